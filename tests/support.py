"""Test helpers: polling with deadlines, a subscriber, and the real chariotd tree."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

CHARIOTD = str(Path(sys.executable).parent / "chariotd")


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02,
               message: str = "condition"):
    """Poll PREDICATE until it returns something true; fail after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for {text}")
        time.sleep(interval)


class Subscriber:
    """A plain paho client (the simulator's identity, allowed every topic) that records
    every message received on its subscriptions."""

    def __init__(self, host: str, port: int, cafile, certfile, keyfile, topics=("#",),
                 session: Optional[str] = None):
        """SESSION: a client id whose session (and queued QoS 1 messages) the broker
        keeps while this subscriber is away, e.g. across a broker restart."""
        self.messages: List[mqtt.MQTTMessage] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=session or f"test-sub-{os.getpid()}-{id(self)}",
                                  clean_session=session is None)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.tls_set(ca_certs=str(cafile), certfile=str(certfile), keyfile=str(keyfile))
        self.topics = list(topics)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise AssertionError("subscriber did not get its SUBACK")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append(message)

    def received(self, topic: Optional[str] = None) -> List[mqtt.MQTTMessage]:
        with self.lock:
            return [m for m in self.messages if topic is None or m.topic == topic]

    def wait_for(self, count: int, timeout: float = 20.0, topic: Optional[str] = None):
        return wait_until(lambda: len(self.received(topic)) >= count and self.received(topic),
                          timeout, message=f"{count} messages")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def write_message(directory: Path, name: str, content: str) -> Path:
    """Write a request the way the README says: into tmp/, then move into new/."""
    tmp = Path(directory) / "tmp" / name
    tmp.write_text(content)
    target = Path(directory) / "new" / name
    os.rename(tmp, target)
    return target


def kill_tree_mid_command(daemon, pidfile: Path) -> None:
    """Wait until a command DAEMON runs has written its pid to PIDFILE, then SIGKILL the
    whole tree (its process group, as a power cut would) and that command, which runs in
    a process group of its own."""
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(),
               message=f"the command writing {pidfile.name} is running")
    try:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.process.wait(10)
    finally:
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _live_processes(field: int, value: int) -> List[int]:
    """Live processes whose /proc/PID/stat FIELD (after the name: 1 ppid, 2 pgid) is VALUE."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[field]) == value and fields[0] != "Z":
            found.append(int(entry))
    return found


def children_of(pid: int) -> List[int]:
    return _live_processes(1, pid)


def process_group_members(pgid: int) -> List[int]:
    return _live_processes(2, pgid)


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Daemon:
    """The real `chariotd` command, in its own process group, stderr to a file."""

    def __init__(self, args: List[str], workdir: Path, env=None):
        self.args = args
        self.log_path = Path(workdir) / f"chariotd-{time.monotonic_ns()}.log"
        self.env = env
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "Daemon":
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, **(self.env or {}))
        self.process = subprocess.Popen([CHARIOTD, *self.args], stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True, env=env)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 10.0):
        regex = re.compile(pattern)
        return wait_until(lambda: regex.search(self.log()), timeout,
                          message=lambda: f"log line matching {pattern!r}\n--- log:\n"
                          + self.log())

    def wait_connected(self, timeout: float = 10.0):
        return self.wait_log(r"link: connected to", timeout)

    def children(self) -> List[int]:
        return children_of(self.pid)

    def wait_exit(self, timeout: float = 10.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"chariotd did not exit within {timeout}s\n{self.log()}")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self) -> Optional[int]:
        """SIGTERM, then make sure nothing of the tree is left (its process group)."""
        if self.process is None:
            return None
        status = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                status = self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(5)
        self._log.close()
        return status if status is not None else self.process.returncode


class Supervised:
    """Keeps a chariotd tree running the way runit does: restarted whenever it exits."""

    def __init__(self, start: Callable[[], Daemon]):
        self._start = start
        self.runs: List[Daemon] = [start()]
        self.exits: List[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._stop.wait(0.05):
            status = self.runs[-1].process.poll()
            if status is not None:
                self.exits.append(status)
                self.runs.append(self._start())

    def log(self) -> str:
        return "\n".join(run.log() for run in self.runs)

    def stop(self):
        self._stop.set()
        self._thread.join()


def end_process_group(process: subprocess.Popen) -> None:
    """SIGKILL what is left of PROCESS's group (it was started with start_new_session),
    then reap PROCESS: a test's `finally`, so that nothing outlives it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(5)
