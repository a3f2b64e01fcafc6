"""systemd: the real tree against a test-owned NOTIFY_SOCKET (a datagram socket in
tmp_path that records what the parent says), and the unit file through
`systemd-analyze verify`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Tuple

import pytest

from support import CHARIOTD, cmdline, wait_until

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "chariotd.service"
WATCHDOG_USEC = 1_000_000  # heartbeats every 0.25 s


class NotifySocket:
    """What systemd would receive: every datagram, with its arrival time."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.datagrams: List[Tuple[float, str]] = []
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        while not self.closed:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.datagrams.append((time.monotonic(), data.decode()))

    def texts(self, since: float = 0.0) -> List[str]:
        with self.lock:
            return [text for when, text in self.datagrams if when >= since]

    def pings(self, since: float = 0.0, until: float = float("inf")) -> int:
        with self.lock:
            return sum(1 for when, text in self.datagrams
                       if since <= when <= until and "WATCHDOG=1" in text.split("\n"))

    def wait_for(self, field: str, timeout: float = 10.0) -> str:
        return wait_until(lambda: next((t for t in self.texts() if field in t.split("\n")),
                                       None), timeout,
                          message=f"a datagram with {field!r}; got {self.texts()}")

    def close(self):
        self.closed = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    recorder = NotifySocket(tmp_path / "notify")
    yield recorder
    recorder.close()


def environ_of(pid: int) -> dict:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item]
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def test_ready_status_watchdog_and_stopping(daemons, base_args, notify_socket, tmp_path):
    rundirs = tmp_path / "run"
    rundirs.mkdir()
    daemon = daemons([*base_args, f"--messages={tmp_path / 'mqtt'}"], tmp_path,
                     env={"NOTIFY_SOCKET": notify_socket.path,
                          "WATCHDOG_USEC": str(WATCHDOG_USEC), "TMPDIR": str(rundirs)})
    ready = notify_socket.wait_for("READY=1")
    assert "STATUS=connected as dev1" in ready.split("\n")
    assert notify_socket.texts()[0] == "STATUS=connecting to the broker"
    wait_until(lambda: notify_socket.pings() >= 3, message="three watchdog pings")

    # Only the parent speaks to systemd: no child (nor what it runs) inherits the socket.
    children = daemon.children()
    for pid in [daemon.pid, *children]:
        assert not {"NOTIFY_SOCKET", "WATCHDOG_USEC"} & set(environ_of(pid))
    (rundir,) = list(rundirs.iterdir())
    assert "parent" in os.listdir(rundir)  # the parent's mailbox, bound after the fork

    # A wedged link (stopped here) means no heartbeat, so no WATCHDOG=1: systemd would
    # kill and restart the service after WatchdogSec.
    link = next(pid for pid in children if cmdline(pid) == "chariotd: link")
    os.kill(link, signal.SIGSTOP)
    stopped_at = time.monotonic()
    time.sleep(1.5)  # what is asserted is an absence over this stretch
    try:
        # A heartbeat already on its way may still give one ping in the first 0.5 s.
        assert notify_socket.pings(since=stopped_at + 0.5) == 0
    finally:
        os.kill(link, signal.SIGCONT)
    resumed_at = time.monotonic()
    wait_until(lambda: notify_socket.pings(since=resumed_at) >= 2,
               message="pings again once the link runs")

    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(5) == 0
    stopping = notify_socket.wait_for("STOPPING=1")
    assert "STATUS=stopping: SIGTERM" in stopping.split("\n")
    assert sum("READY=1" in t.split("\n") for t in notify_socket.texts()) == 1


def test_link_down_status_and_a_child_dying(daemons, base_args, broker, notify_socket,
                                            tmp_path):
    daemon = daemons(base_args, tmp_path, env={"NOTIFY_SOCKET": notify_socket.path,
                                               "CHARIOTD_BACKOFF_BASE": "0.1"})
    notify_socket.wait_for("READY=1")
    broker.stop()
    notify_socket.wait_for("STATUS=link down; reconnecting")
    broker.start()
    wait_until(lambda: notify_socket.texts()[-1] == "STATUS=connected as dev1",
               timeout=15, message="connected again")
    assert sum("READY=1" in t.split("\n") for t in notify_socket.texts()) == 1
    assert notify_socket.pings() == 0  # no WATCHDOG_USEC: no watchdog

    link = next(pid for pid in daemon.children() if cmdline(pid) == "chariotd: link")
    os.kill(link, signal.SIGKILL)
    assert daemon.wait_exit(5) == 1
    stopping = notify_socket.wait_for("STOPPING=1")
    assert "STATUS=stopping: link was killed by signal SIGKILL" in stopping.split("\n")


def test_watchdog_meant_for_another_process_is_left_alone(daemons, base_args,
                                                          notify_socket, tmp_path):
    daemon = daemons(base_args, tmp_path, env={
        "NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": str(WATCHDOG_USEC),
        "WATCHDOG_PID": "1"})
    notify_socket.wait_for("READY=1")
    daemon.wait_connected()
    time.sleep(0.6)  # longer than two heartbeat intervals would be
    assert notify_socket.pings() == 0


def test_abstract_notify_socket(daemons, base_args, tmp_path):
    name = f"chariotd-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(10)
    try:
        daemons(base_args, tmp_path, env={"NOTIFY_SOCKET": "@" + name})
        received = []
        while not any("READY=1" in t.split("\n") for t in received):
            received.append(sock.recv(4096).decode())
    finally:
        sock.close()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (apt package systemd)")
def test_unit_file_verifies(tmp_path):
    # verify insists that ExecStart= exists and EnvironmentFile= is readable: point them
    # at this checkout's chariotd and an empty options file; nothing else changes.
    options = tmp_path / "default"
    options.write_text('CHARIOTD_OPTS="--version"\n')
    text = UNIT.read_text()
    assert "ExecStart=/opt/chariotd/bin/chariotd $CHARIOTD_OPTS" in text
    unit = tmp_path / "chariotd.service"
    unit.write_text(text.replace("/opt/chariotd/bin/chariotd", CHARIOTD)
                    .replace("/etc/default/chariotd", str(options)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and output == "", output
    for line in ("Type=notify", "Restart=always", "WatchdogSec=", "RuntimeDirectory=chariotd",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "KillMode=mixed"):
        assert line in text
