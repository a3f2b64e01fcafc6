"""scripts/demo, run as a new user would but without a terminal (DEMO_EXIT_AFTER=1): it
goes through every step and stops everything, even when its usual port is taken."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from support import end_process_group, wait_until

REPO = Path(__file__).resolve().parents[2]
USUAL_PORT = 18883


def run_demo(tmp_path: Path, timeout: float = 60, **env) -> subprocess.CompletedProcess:
    process = subprocess.Popen(
        [str(REPO / "scripts" / "demo")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
        env=dict(os.environ, DEMO_DIR=str(tmp_path / "demo"), DEMO_EXIT_AFTER="1",
                 DEMO_SKIP_SETUP="1", **env))
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        end_process_group(process)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def processes_mentioning(text: str):
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_text():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


@pytest.fixture
def port_taken():
    """Take 127.0.0.1:PORT (0: any free one), listening as Mosquitto would, unless
    something has it already; return the port."""
    holders = []

    def take(port: int) -> int:
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", port))
            holder.listen()
            holders.append(holder)
            return holder.getsockname()[1]
        except OSError:  # taken already: just as good
            holder.close()
        return port

    yield take
    for holder in holders:
        holder.close()


def test_demo_runs_every_step_on_a_free_port_when_its_own_is_taken(tmp_path, port_taken):
    port_taken(USUAL_PORT)
    result = run_demo(tmp_path)
    demo = tmp_path / "demo"
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"demo: port {USUAL_PORT} is taken; using " in out
    port = int(out.split("; using ", 1)[1].split()[0])
    assert port != USUAL_PORT and f"IoT Core on 127.0.0.1:{port}" in out
    assert f"link: connected to 127.0.0.1:{port} as demo-thing" in result.stderr
    assert 'demo/hello {"key":"value","key2":2}' in out  # what the cloud saw
    assert "new/ is empty: published and acknowledged" in out
    assert (demo / "out" / "led.rc").read_text() == "blink='5'\ncolour='red'\n"
    assert len((demo / "out" / "led.notified").read_text().splitlines()) == 2
    # The cleanup ran to its end and left nothing running.
    assert out.endswith(f"demo: stopped; state kept in {demo}\n")
    assert processes_mentioning(str(demo)) == []


def test_demo_port_taken_is_said_at_once(tmp_path, port_taken):
    port = port_taken(0)
    result = run_demo(tmp_path, timeout=20, DEMO_PORT=str(port))
    assert result.returncode == 1
    assert result.stderr == (f"demo: port {port} on 127.0.0.1 is taken (Address already in "
                             "use)\ndemo: set DEMO_PORT to a free port, or unset it to pick "
                             "one\n")
    assert not (tmp_path / "demo" / "sim.log").exists()


def test_demo_stops_everything_on_sigterm_while_running(tmp_path):
    demo = tmp_path / "demo"
    out_path = tmp_path / "out"
    with open(out_path, "wb") as out:
        process = subprocess.Popen(
            [str(REPO / "scripts" / "demo")], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ, DEMO_DIR=str(demo), DEMO_SKIP_SETUP="1"))
    try:
        wait_until(lambda: "Ctrl-C to stop" in out_path.read_text(), timeout=30,
                   message=lambda: "the demo's last step\n" + out_path.read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 143
    finally:
        end_process_group(process)
    assert out_path.read_text().endswith(f"demo: stopped; state kept in {demo}\n")
    assert processes_mentioning(str(demo)) == []
