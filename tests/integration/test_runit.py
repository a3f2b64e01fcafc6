"""runit for real: runsv on a copy of runit/chariotd (with log/run and svlogd), pointed
at a test broker. A child killed restarts the whole tree; `sv down` stops it cleanly;
a configuration error pauses in finish instead of spinning; nothing is left behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support import CHARIOTD, alive, children_of, cmdline, wait_until, write_message

REPO = Path(__file__).resolve().parents[2]
SERVICE = REPO / "runit" / "chariotd"

pytestmark = pytest.mark.skipif(shutil.which("runsv") is None or shutil.which("sv") is None,
                                reason="runit is not installed (scripts/setup installs it)")


def marked_processes(mark: str):
    """Pids of every process whose environment carries MARK (all of runsv's descendants)."""
    found = []
    needle = f"CHARIOTD_TEST_MARK={mark}".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0") and alive(int(entry)):
                        found.append(int(entry))
            except OSError:
                pass
    return found


class Runsv:
    def __init__(self, tmp_path: Path, opts: str, pause: int = 10):
        self.mark = str(tmp_path)
        self.service = tmp_path / "service" / "chariotd"
        shutil.copytree(SERVICE, self.service)
        self.logdir = tmp_path / "log"
        (self.service / "conf").write_text(
            f'CHARIOTD="{CHARIOTD}"\n'
            f'CHARIOTD_OPTS="{opts}"\n'
            f'CHARIOTD_LOGDIR="{self.logdir}"\n'
            f"CHARIOTD_CONFIG_ERROR_PAUSE={pause}\n")
        env = dict(os.environ, CHARIOTD_TEST_MARK=self.mark)
        self.output = open(tmp_path / "runsv.out", "wb")
        self.process = subprocess.Popen(["runsv", str(self.service)], stdin=subprocess.DEVNULL,
                                        stdout=self.output, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)

    def log(self) -> str:
        try:
            return (self.logdir / "current").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))

    def wait_count(self, pattern: str, count: int, timeout: float = 15.0):
        wait_until(lambda: self.count(pattern) >= count, timeout,
                   message=f"{count} log lines matching {pattern!r}\n--- log:\n" + self.log())

    def pid(self):
        try:
            text = (self.service / "supervise" / "pid").read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None

    def sv(self, *command: str) -> str:
        return subprocess.run(["sv", *command, str(self.service)], capture_output=True,
                              text=True, timeout=10).stdout

    def close(self) -> None:
        if self.process.poll() is None:
            self.sv("down")
            self.sv("exit")
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in marked_processes(self.mark):
            os.kill(pid, signal.SIGKILL)
        self.process.wait(5)
        self.output.close()


@pytest.fixture
def runsv_service(tmp_path):
    started = []

    def start(opts: str, pause: int = 10) -> Runsv:
        service = Runsv(tmp_path, opts, pause)
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()


def test_runsv_restarts_the_tree_and_sv_down_stops_it(runsv_service, base_args, subscriber,
                                                      tmp_path):
    mqtt = tmp_path / "mqtt"
    service = runsv_service(" ".join([*base_args, f"--messages={mqtt}"]))
    service.wait_count(r"link: connected to", 1)
    first = service.pid()
    assert cmdline(first) == "chariotd"
    children = children_of(first)
    assert sorted(cmdline(pid) for pid in children) == [
        "chariotd: link", f"chariotd: watch messages {mqtt}"]
    # svlogd adds the timestamps; chariotd's own lines carry none.
    line = next(l for l in service.log().splitlines() if "link: connected to" in l)
    assert re.match(r"^\d{4}-\d\d-\d\d_\d\d:\d\d:\d\d\.\d+ link: connected to ", line), line

    watcher = next(pid for pid in children if "watch messages" in cmdline(pid))
    os.kill(watcher, signal.SIGKILL)
    service.wait_count(r"chariotd/finish: chariotd exited with status 1\b", 1)
    service.wait_count(r"link: connected to", 2)
    second = service.pid()
    assert second != first and cmdline(second) == "chariotd"
    assert not any(alive(pid) for pid in [first, *children])
    write_message(mqtt, "after-restart", '{"topic": "runit/t", "payload": "back"}')
    assert subscriber.wait_for(1, topic="runit/t")[0].payload == b"back"

    children = children_of(second)
    service.sv("down")
    service.wait_count(r"chariotd/finish: chariotd exited with status 0\b", 1)
    assert service.sv("status").startswith("down:")
    assert not any(alive(pid) for pid in [second, *children])
    assert "chariotd: SIGTERM: stopping" in service.log()
    service.sv("exit")
    assert service.process.wait(10) == 0
    wait_until(lambda: not marked_processes(service.mark), 5,
               message="no process of the service left")


def test_a_configuration_error_pauses_instead_of_spinning(runsv_service, test_pki, tmp_path):
    missing = tmp_path / "no-such-certstore"
    pause = 2
    service = runsv_service(f"--clientid=dev1 --cacert={test_pki.cafile} "
                            f"--certstore={missing}", pause=pause)
    exits = r"chariotd/finish: chariotd exited with status 2\b"
    service.wait_count(exits, 1)
    first = time.monotonic()
    service.wait_count(exits, 2, timeout=pause + 10)
    assert time.monotonic() - first >= pause - 0.5
    assert f"--certstore: {missing} is not a directory" in service.log()
    assert f"configuration error; next attempt in {pause} s" in service.log()


def test_a_missing_conf_is_a_configuration_error(tmp_path):
    service = tmp_path / "chariotd"
    shutil.copytree(SERVICE, service)
    # No ./conf here; point the fallback at a file that does not exist either.
    run = (service / "run").read_text().replace("/etc/default/chariotd",
                                                str(tmp_path / "absent"))
    (service / "run").write_text(run)
    result = subprocess.run(["./run"], cwd=service, capture_output=True, text=True,
                            timeout=10)
    assert result.returncode == 2
    assert "no ./conf and no readable" in result.stdout
