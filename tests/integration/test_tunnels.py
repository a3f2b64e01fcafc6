"""Secure tunneling: notifications and open-tunnel / close-tunnel commands start and stop
a stand-in local proxy that records its arguments and environment."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from support import alive, wait_until, write_message

TOKEN = "tok-SECRET-4f9a1c"
STAND_IN = """\
#!{python}
import json, os, signal, sys, time
record = {{"argv": sys.argv[1:], "pid": os.getpid(), "cwd": os.getcwd(),
          "own_session": os.getsid(0) == os.getpid(), "started": time.time(),
          "env": {{k: v for k, v in os.environ.items() if k.startswith("AWSIOT_")}}}}
path = os.path.join({records!r}, "%d.json" % os.getpid())
with open(path + ".tmp", "w") as f:
    json.dump(record, f)
os.rename(path + ".tmp", path)
while True:
    signal.pause()
"""


class Tunnel:
    def __init__(self, sim, tmp_path: Path):
        self.sim = sim
        self.root = tmp_path / "dev1"
        self.records = self.root / "proxies"
        self.records.mkdir(parents=True)
        self.proxy = self.root / "localproxy"
        self.proxy.write_text(STAND_IN.format(python=sys.executable,
                                              records=str(self.records)))
        self.proxy.chmod(0o755)
        self.cadir = self.root / "ca"
        self.cadir.mkdir()
        self.commands = self.root / "cmd"
        self.certstore = sim.device("dev1")

    def args(self, *extra):
        return ["--clientid=dev1", f"--cacert={self.sim.cafile}",
                f"--certstore={self.certstore}", "--log-level=debug",
                "--tunnelmappings=dev1:SSH=22,VNC=5900", f"--tunnelproxy={self.proxy}",
                f"--commands={self.commands}", *extra]

    def started(self):
        records = [json.loads(p.read_text()) for p in self.records.glob("*.json")]
        return sorted(records, key=lambda r: r["started"])

    def wait_started(self, count: int):
        return wait_until(lambda: len(self.started()) >= count and self.started(),
                          message=f"{count} proxies started")

    def running(self):
        return [r for r in self.started() if alive(r["pid"])]

    def kill_leftovers(self):
        for record in self.started():
            if alive(record["pid"]):
                os.kill(record["pid"], signal.SIGKILL)


@pytest.fixture
def tunnel(sim, tmp_path):
    tunnel = Tunnel(sim, tmp_path)
    yield tunnel
    tunnel.kill_leftovers()  # only if a test failed half-way


def test_notifications_start_and_replace_the_proxy(daemons, tunnel, tmp_path):
    daemon = daemons(tunnel.args(f"--tunnelcadir={tunnel.cadir}"), tmp_path)
    daemon.wait_log(r"subscribed to \d+ topic filters")
    tunnel.sim.notify_tunnel("dev1", services=["VNC", "HTTP", "SSH"], token=TOKEN,
                             region="eu-west-1")
    first, = tunnel.wait_started(1)
    assert first["argv"] == ["-d", "VNC=5900,SSH=22", "-c", str(tunnel.cadir)]
    assert first["env"] == {"AWSIOT_TUNNEL_ACCESS_TOKEN": TOKEN,
                            "AWSIOT_TUNNEL_REGION": "eu-west-1"}
    assert first["cwd"] == "/" and first["own_session"]
    daemon.wait_log(r"dev1: tunnel services not mapped, ignored: HTTP")

    # Nothing mapped: logged, nothing started, the running proxy left alone.
    tunnel.sim.notify_tunnel("dev1", services=["RDP"], token=TOKEN + "-x")
    daemon.wait_log(r"none of the requested services \(RDP\) is mapped; no proxy started")
    # Source mode is not for a device.
    tunnel.sim.publish("$aws/things/dev1/tunnels/notify", {
        "clientAccessToken": TOKEN, "clientMode": "source", "region": "r",
        "services": ["SSH"]})
    daemon.wait_log(r"clientMode is 'source', not 'destination'")
    assert [r["pid"] for r in tunnel.running()] == [first["pid"]]

    # A new notification for the thing replaces the proxy.
    tunnel.sim.notify_tunnel("dev1", services=["SSH"], token=TOKEN + "-2", region="us-east-1")
    second = tunnel.wait_started(2)[1]
    assert second["argv"] == ["-d", "SSH=22", "-c", str(tunnel.cadir)]
    assert second["env"]["AWSIOT_TUNNEL_ACCESS_TOKEN"] == TOKEN + "-2"
    wait_until(lambda: not alive(first["pid"]), message="first proxy stopped")
    daemon.wait_log(rf"tunnel proxy pid {first['pid']} stopped")

    # A proxy never outlives chariotd, though it runs in its own session.
    assert daemon.stop() == 0
    assert not alive(second["pid"])
    assert TOKEN not in daemon.log()  # not even at debug level


def test_open_and_close_tunnel_commands(daemons, tunnel, tmp_path):
    daemon = daemons(tunnel.args(), tmp_path)
    daemon.wait_connected()
    commands = tunnel.commands
    write_message(commands, "open-tunnel", json.dumps({
        "thing": "dev1", "region": "ap-south-1", "services": ["SSH"], "token": TOKEN}))
    first, = tunnel.wait_started(1)
    assert first["argv"] == ["-d", "SSH=22"]  # no --tunnelcadir, no -c
    assert first["env"] == {"AWSIOT_TUNNEL_ACCESS_TOKEN": TOKEN,
                            "AWSIOT_TUNNEL_REGION": "ap-south-1"}
    wait_until(lambda: os.listdir(commands / "new") == [], message="open-tunnel done")

    write_message(commands, "close-tunnel", json.dumps({"thing": "dev1"}))
    wait_until(lambda: not alive(first["pid"]), message="proxy stopped by close-tunnel")
    wait_until(lambda: os.listdir(commands / "new") == [], message="close-tunnel done")

    bad = [("open-tunnel", "{}", "'thing' must be a non-empty string"),
           ("open-tunnel", json.dumps({"thing": "other", "region": "r", "services": ["SSH"],
                                       "token": TOKEN}),
            "no --tunnelmappings for thing 'other'"),
           ("open-tunnel", json.dumps({"thing": "dev1", "region": "r", "services": ["X"],
                                       "token": TOKEN}),
            r"none of the requested services \(X\) is mapped"),
           ("close-tunnel", "not json", "not JSON")]
    for name, content, reason in bad:
        write_message(commands, name, content)
        wait_until(lambda: name in os.listdir(commands / "failed"), message=f"{name} failed")
        daemon.wait_log(rf"{name}: {reason}.*; moved to failed/")
        os.unlink(commands / "failed" / name)
    assert len(tunnel.started()) == 1

    # A proxy running when chariotd stops is stopped with it.
    write_message(commands, "open-tunnel", json.dumps({
        "thing": "dev1", "region": "r", "services": ["VNC"], "token": TOKEN}))
    wait_until(lambda: tunnel.running(), message="second proxy")
    assert daemon.stop() == 0
    assert tunnel.running() == []
    assert TOKEN not in daemon.log()


def test_missing_proxy_program_fails_the_command(daemons, tunnel, tmp_path):
    daemon = daemons(tunnel.args(f"--tunnelproxy={tmp_path / 'no-such-proxy'}"), tmp_path)
    daemon.wait_connected()
    write_message(tunnel.commands, "open-tunnel", json.dumps({
        "thing": "dev1", "region": "r", "services": ["SSH"], "token": TOKEN}))
    daemon.wait_log(r"open-tunnel: cannot start the tunnel proxy .*no-such-proxy: No such "
                    r"file or directory; moved to failed/")
    assert TOKEN not in daemon.log()
