"""What reaches a child's argv or environment, through the real tree (issue 12, finding
4): a NUL or lone surrogate from the cloud, a command file, a message file or a broker
is refused where it enters, with one log line; the input goes to failed/ (files) or is
dropped (messages); the same processes keep running and keep working. And
--subscribe-exec under a flood: one handler at a time, a bounded queue."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from scripted_broker import ScriptedBroker
from support import wait_until, write_message

STAND_IN_PROXY = """\
#!{python}
import os, signal
open(os.path.join({records!r}, str(os.getpid())), "w").write(
    os.environ.get("AWSIOT_TUNNEL_REGION", ""))
while True:
    signal.pause()
"""


def count(pattern: str, text: str) -> int:
    return len(re.findall(pattern, text))


def executable(path: Path, body: str) -> Path:
    path.write_text(body)
    path.chmod(0o755)
    return path


def failed(directory: Path):
    return sorted(os.listdir(directory / "failed")) if (directory / "failed").exists() else []


class Tunnel:
    """A device with --tunnelmappings, --commands and a stand-in proxy that records its
    region and waits."""

    def __init__(self, sim, daemons, tmp_path: Path):
        self.sim = sim
        self.records = tmp_path / "proxies"
        self.records.mkdir()
        proxy = executable(tmp_path / "localproxy", STAND_IN_PROXY.format(
            python=sys.executable, records=str(self.records)))
        self.commands = tmp_path / "cmd"
        self.daemon = daemons([
            "--clientid=dev1", f"--cacert={sim.cafile}", f"--certstore={sim.device('dev1')}",
            "--tunnelmappings=dev1:SSH=22", f"--tunnelproxy={proxy}",
            f"--commands={self.commands}"], tmp_path)
        self.daemon.wait_log(r"subscribed to \d+ topic filters")
        self.roles = sorted(self.daemon.children())

    def regions(self):
        return sorted(p.read_text() for p in self.records.iterdir())

    def stop_proxies(self):
        for path in self.records.iterdir():
            try:
                os.kill(int(path.name), 9)
            except ProcessLookupError:
                pass


def test_a_tunnel_notification_with_a_nul_in_the_region_is_dropped(sim, daemons, tmp_path):
    tunnel = Tunnel(sim, daemons, tmp_path)
    try:
        sim.notify_tunnel("dev1", services=["SSH"], token="tok", region="us-east-1\u0000x")
        sim.notify_tunnel("dev1", services=["SSH"], token="tok", region="eu-\ud800")
        daemon = tunnel.daemon
        wait_until(lambda: count(r"dev1: ignored a tunnel notification: 'region' must be "
                                 r"1-64 letters, digits or '-'\n", daemon.log()) == 2,
                   message=lambda: daemon.log())
        # the same processes, still working: a good notification starts the proxy
        sim.notify_tunnel("dev1", services=["SSH"], token="tok", region="eu-west-1")
        wait_until(lambda: tunnel.regions() == ["eu-west-1"], message="the proxy started")
        assert sorted(daemon.children()) == tunnel.roles
        assert "\x00" not in daemon.log() and "Traceback" not in daemon.log()
    finally:
        tunnel.stop_proxies()


def test_an_open_tunnel_file_with_a_nul_in_the_token_goes_to_failed(sim, daemons, tmp_path):
    tunnel = Tunnel(sim, daemons, tmp_path)
    try:
        command = {"thing": "dev1", "region": "eu-west-1", "services": ["SSH"]}
        write_message(tunnel.commands, "open-tunnel",
                      json.dumps({**command, "token": "a\u0000b"}))
        wait_until(lambda: failed(tunnel.commands) == ["open-tunnel"],
                   message=lambda: tunnel.daemon.log())
        log = tunnel.daemon.log()
        assert count(r"open-tunnel: 'token' must be 1-4096 printable ASCII characters, no "
                     r"space; moved to failed/\n", log) == 1, log
        assert os.listdir(tunnel.commands / "new") == []
        # no crash loop: the same processes take the next command
        os.unlink(tunnel.commands / "failed" / "open-tunnel")
        write_message(tunnel.commands, "open-tunnel", json.dumps({**command, "token": "ok"}))
        wait_until(lambda: tunnel.regions() == ["eu-west-1"], message="the proxy started")
        wait_until(lambda: os.listdir(tunnel.commands / "new") == [], message="taken")
        assert failed(tunnel.commands) == []
        assert sorted(tunnel.daemon.children()) == tunnel.roles
    finally:
        tunnel.stop_proxies()


def test_a_message_with_a_nul_in_its_slot_goes_to_failed(daemons, base_args, subscriber,
                                                         tmp_path):
    generator = executable(tmp_path / "gen", "#!/bin/sh\necho "
                           '"{\\"payload\\": {\\"slot\\": \\"$MESSAGE_PRIORITY_SLOT\\"}}"\n')
    mqtt = tmp_path / "mqtt"
    daemon = daemons([*base_args, f"--messages={mqtt}",
                      f"--default-letterhead-generator={generator}"], tmp_path)
    daemon.wait_connected()
    roles = sorted(daemon.children())
    write_message(mqtt, "bad", json.dumps({"topic": "t/x", "payload": {"n": 1},
                                           "priority_slot": "s\u0000x"}))
    write_message(mqtt, "bad2", json.dumps({"topic": "t/x", "payload": {"n": 2},
                                            "priority_slot": "s\udc00x"}))
    wait_until(lambda: failed(mqtt) == ["bad", "bad2"], message=lambda: daemon.log())
    log = daemon.log()
    for name in ("bad", "bad2"):
        assert count(rf"{name}: priority_slot must be at most 256 printable characters to "
                     r"be given to the letterhead generator; moved to failed/\n", log) == 1
    # the same watcher publishes the next one, its slot told to the generator
    write_message(mqtt, "good", json.dumps({"topic": "t/x", "payload": {"n": 3},
                                            "priority_slot": "fine"}))
    received, = subscriber.wait_for(1, topic="t/x")
    assert json.loads(received.payload) == {"slot": "fine", "n": 3}
    assert sorted(daemon.children()) == roles and "Traceback" not in daemon.log()


def test_a_topic_with_a_nul_from_the_broker_is_dropped(test_pki, daemons, tmp_path):
    from conftest import make_certstore
    broker = ScriptedBroker(test_pki, suback="grant", answer=True)
    try:
        handled = tmp_path / "handled"
        handler = executable(tmp_path / "handler",
                             f'#!/bin/sh\nprintf "%s\\n" "$MESSAGE_TOPIC" >> {handled}\n')
        certstore = make_certstore(test_pki, tmp_path / "certstore",
                                   f"127.0.0.1:{broker.port}")
        daemon = daemons(["--clientid=dev1", f"--cacert={test_pki.cafile}",
                          f"--certstore={certstore}", f"--subscribe-exec=dev1/in/#:{handler}"],
                         tmp_path)
        daemon.wait_log(r"subscribed to \d+ topic filters")
        roles = sorted(daemon.children())
        broker.publish(b"dev1/in/a\x00b", b"x")
        broker.publish(b"dev1/in/ok", b"y")
        wait_until(lambda: handled.exists() and handled.read_text() == "dev1/in/ok\n",
                   message=lambda: daemon.log())
        log = daemon.log()
        assert count(r"dropped a message on a topic holding a NUL: 'dev1/in/a\\x00b'\n",
                     log) == 1, log
        assert sorted(daemon.children()) == roles and "\x00" not in log
    finally:
        broker.stop()


# -- --subscribe-exec under a flood ---------------------------------------------------------
def test_subscribe_exec_runs_one_handler_at_a_time_under_a_flood(sim, daemons, tmp_path):
    """300 messages published as fast as the broker takes them on one subscription whose
    handler takes 50 ms: at no moment do two handlers of it run (mkdir as a lock), the
    queue holds at most QUEUE_LIMIT, the rest are dropped and counted in the log."""
    from chariotd.services.subscriptions import QUEUE_LIMIT
    state = tmp_path / "state"
    state.mkdir()
    handler = executable(tmp_path / "handler", f"""#!/bin/sh
mkdir {state}/running 2>/dev/null || echo overlap >> {state}/overlaps
sleep 0.05
echo "$MESSAGE_TOPIC" >> {state}/handled
rmdir {state}/running
""")
    daemon = daemons(["--clientid=dev1", f"--cacert={sim.cafile}",
                      f"--certstore={sim.device('dev1')}",
                      f"--subscribe-exec=flood/#:{handler}"], tmp_path)
    daemon.wait_log(r"subscribed to \d+ topic filters")
    roles = sorted(daemon.children())
    sent = 300
    for index in range(sent):
        sim.publish(f"flood/{index}", b"x")
    daemon.wait_log(r"messages were dropped", timeout=30)

    def handled():
        try:
            return (state / "handled").read_text().splitlines()
        except FileNotFoundError:
            return []

    def dropped():
        return sum(map(int, re.findall(r"handler: (\d+) messages were dropped", daemon.log())))

    wait_until(lambda: len(handled()) + dropped() == sent, timeout=60,
               message=lambda: f"{len(handled())} + {dropped()} of {sent}\n{daemon.log()}")
    assert not (state / "overlaps").exists()  # never two handlers at once
    log = daemon.log()
    # each overflow: one line when the queue is full, one with the count once it drains
    assert (count(rf"handler: {QUEUE_LIMIT} messages waiting; dropping new ones", log)
            == count(r"handler: \d+ messages were dropped", log) >= 1)
    assert sorted(handled(), key=lambda t: int(t.split("/")[1])) == handled()  # in order
    assert sorted(daemon.children()) == roles
    print(f"flood: sent {sent}, handled {len(handled())}, dropped {dropped()}")
