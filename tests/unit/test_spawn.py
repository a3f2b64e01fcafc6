"""Spawner: commands run from the poll loop (real processes, short limits)."""

from __future__ import annotations

import os
import time

import pytest

from chariotd.kernel.loop import Loop
from chariotd.kernel.spawn import Spawner, child_environment
from support import alive, wait_until


def script(tmp_path, body, name="cmd"):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def run(argv, timeout=5.0, **options):
    loop = Loop()
    spawner = Spawner(loop)
    results = []

    def done(result):
        results.append(result)
        loop.stop(0)

    started = time.monotonic()
    loop.call_later(10, lambda: loop.stop(1))  # a safety net, never reached
    spawner.run(argv, done, timeout=timeout, **options)
    try:
        assert loop.run() == 0
    finally:
        import signal
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    assert len(results) == 1
    return results[0], time.monotonic() - started


def test_output_and_status(tmp_path):
    result, _ = run([script(tmp_path, 'printf out; printf err >&2; exit 0\n')],
                    capture_stdout=True)
    assert (result.ok, result.stdout, result.stderr) == (True, b"out", b"err")


def test_stdin_is_fed(tmp_path):
    result, _ = run(["/bin/sh", "-c", "cat"], stdin=b"x" * 200000, capture_stdout=True)
    assert result.ok and result.stdout == b"x" * 200000


def test_environment_without_secrets(tmp_path):
    os.environ["CHARIOTD_TEST_TOKEN"] = "s3cret"
    os.environ["NOTIFY_SOCKET"] = "/run/x"
    try:
        assert "CHARIOTD_TEST_TOKEN" not in child_environment()
        result, _ = run(["/bin/sh", "-c", "env"], capture_stdout=True, env={"EXTRA": "1"})
        exact, _ = run(["/bin/sh", "-c", "env"], capture_stdout=True,
                       env={"PATH": os.defpath, "ONLY": "this"}, inherit_env=False)
    finally:
        del os.environ["CHARIOTD_TEST_TOKEN"], os.environ["NOTIFY_SOCKET"]
    assert b"s3cret" not in result.stdout and b"NOTIFY_SOCKET" not in result.stdout
    assert b"EXTRA=1" in result.stdout and b"PATH=" in result.stdout
    assert b"ONLY=this" in exact.stdout and b"HOME=" not in exact.stdout


def test_working_directory_is_root(tmp_path):
    result, _ = run(["/bin/sh", "-c", "pwd"], capture_stdout=True)
    assert result.stdout == b"/\n"


@pytest.mark.parametrize("body,reason", [
    ("exit 3\n", "exited with status 3"),
    ("kill -9 $$\n", "was killed by signal 9"),
])
def test_failures(tmp_path, body, reason):
    result, _ = run([script(tmp_path, body)])
    assert not result.ok and result.describe() == reason


def test_a_command_that_cannot_be_run(tmp_path):
    result, _ = run([str(tmp_path / "missing")])
    assert result.status == 127 and b"No such file" in result.stderr


def test_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    result, elapsed = run([script(tmp_path, f"sleep 30 &\necho $! > {pidfile}\nsleep 30\n")],
                          timeout=0.3)
    assert result.timed_out and result.describe() == "timed out and was killed"
    assert elapsed < 2
    grandchild = int(pidfile.read_text())
    wait_until(lambda: not alive(grandchild), timeout=5, message="the grandchild killed")


def test_a_daemon_left_behind_is_neither_waited_for_nor_killed(tmp_path):
    pidfile = tmp_path / "daemon.pid"
    result, elapsed = run([script(tmp_path, f"sleep 30 &\necho $! > {pidfile}\necho done\n")],
                          capture_stdout=True)
    assert result.ok and result.stdout == b"done\n" and elapsed < 2
    daemon = int(pidfile.read_text())
    assert alive(daemon)
    os.kill(daemon, 9)


def test_output_over_the_limit_is_cut_and_flagged(tmp_path):
    from chariotd.kernel import spawn
    result, _ = run(["/bin/sh", "-c", f"head -c {spawn.OUTPUT_LIMIT + 10} /dev/zero"],
                    capture_stdout=True)
    assert result.truncated and len(result.stdout) == spawn.OUTPUT_LIMIT
