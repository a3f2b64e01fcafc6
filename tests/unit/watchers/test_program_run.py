"""ProgramRun: a helper program run inside the poll loop (real processes, short limits)."""

from __future__ import annotations

import os
import time

import pytest

from chariotd.loop import Loop
from chariotd.watchers.program import ProgramRun
from support import alive, wait_until


def script(tmp_path, body, name="gen"):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def run(program, env=None, time_limit=5.0, max_output=1 << 20):
    loop = Loop()
    results = []

    def done(output, failure):
        results.append((output, failure))
        loop.stop(0)

    started = time.monotonic()
    loop.call_later(10, lambda: loop.stop(1))  # a safety net, never reached
    ProgramRun(loop, program, env if env is not None else {"PATH": os.defpath},
               time_limit, max_output, done)
    assert loop.run() == 0
    assert len(results) == 1
    return results[0], time.monotonic() - started


def test_output_of_a_program_that_exits_0(tmp_path):
    (output, failure), _ = run(script(tmp_path, 'printf \'{"a": 1}\'\n'))
    assert (output, failure) == (b'{"a": 1}', None)


def test_exactly_the_given_environment(tmp_path):
    os.environ["CHARIOTD_TEST_SECRET"] = "s3cret"
    try:
        (output, failure), _ = run(script(tmp_path, "env\n"),
                                   env={"PATH": os.defpath, "MESSAGE_TOPIC": "a/b"})
    finally:
        del os.environ["CHARIOTD_TEST_SECRET"]
    assert failure is None
    lines = set(output.decode().split())
    assert "MESSAGE_TOPIC=a/b" in lines and not any("s3cret" in line for line in lines)


@pytest.mark.parametrize("body,reason", [
    ("exit 3\n", "exited with status 3"),
    ("kill -9 $$\n", "killed by signal 9"),
])
def test_failures(tmp_path, body, reason):
    (output, failure), _ = run(script(tmp_path, body))
    assert output is None and reason in failure


def test_a_program_that_cannot_be_run(tmp_path):
    (output, failure), _ = run(str(tmp_path / "missing"))
    assert output is None and "cannot run" in failure
    (output, failure), _ = run(str(tmp_path))
    assert output is None and "cannot run" in failure


def test_time_limit_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    program = script(tmp_path, f"sleep 30 &\necho $! > {pidfile}\nsleep 30\n")
    (output, failure), elapsed = run(program, time_limit=0.3)
    assert output is None and "did not finish within 0.3 s" in failure
    assert elapsed < 2
    grandchild = int(pidfile.read_text())
    wait_until(lambda: not alive(grandchild), timeout=5, message="the grandchild killed")


def test_a_grandchild_holding_the_pipe_is_not_waited_for(tmp_path):
    program = script(tmp_path, "sleep 3 &\necho '{}'\n")
    (output, failure), elapsed = run(program)
    assert (output, failure) == (b"{}\n", None) and elapsed < 2


def test_output_over_the_limit_fails(tmp_path):
    (output, failure), _ = run(script(tmp_path, "head -c 100000 /dev/zero\nsleep 5\n"),
                               max_output=1000)
    assert output is None and "more than 1000 bytes" in failure
