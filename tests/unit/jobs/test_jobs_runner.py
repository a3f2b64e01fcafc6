"""One handler process: exit, signal, timeout, stop of its whole group, output of any
size, runAsUser, the environment. Real processes, the real loop."""

import os
import pwd
import signal
import time

import pytest

from chariotd.jobs.details import step_outcome
from chariotd.jobs.document import RUN_COMMAND, RUN_HANDLER, Step
from chariotd.jobs.runner import (COMMANDS_REFUSED, HandlerRun, StepRefused, account,
                                  step_argv, step_environment)
from chariotd.kernel.loop import Loop
from chariotd.kernel.spawn import CannotStart


def run(argv, timeout=10.0, grace=10.0, env=None, user=None, on_tick=None, after=None,
        limit=20.0):
    """Run ARGV to its end; (StepResult, HandlerRun)."""
    loop = Loop()
    results = []

    def done(result):
        results.append(result)
        loop.stop()

    handler = HandlerRun(loop, argv, env or step_environment("j1", 1, "/d", "/r", None),
                         timeout, done, on_tick=on_tick, user=user, grace=grace, tick=0.05)
    if after is not None:
        loop.call_later(after[0], lambda: after[1](handler))
    loop.call_later(limit, lambda: loop.stop(1))
    assert loop.run() == 0, "the handler did not end in time"
    return results[0], handler


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[1].split()[0] != "Z"


def test_exit_status_and_output():
    result, _ = run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert result.exit_status == 3 and not result.timed_out
    assert result.stdout == b"out\n" and result.stderr == b"err\n"


def test_a_signal_is_a_signal():
    result, _ = run(["/bin/sh", "-c", "kill -USR1 $$"])
    assert result.exit_status == -signal.SIGUSR1
    assert step_outcome(result, False).details["signal"] == "SIGUSR1"


def test_output_of_any_size_never_blocks_and_tails_are_kept():
    script = ("head -c 5000000 /dev/zero | tr '\\0' e >&2; "
              "head -c 3000000 /dev/zero | tr '\\0' o; echo END; echo ERR >&2")
    started = time.monotonic()
    result, _ = run(["/bin/sh", "-c", script])
    assert result.exit_status == 0
    assert result.stdout.endswith(b"oEND\n") and len(result.stdout) <= 8192
    assert result.stderr.endswith(b"eERR\n") and len(result.stderr) <= 8192
    assert time.monotonic() - started < 15


def test_timeout_stops_the_whole_group(tmp_path):
    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! > {pids}; trap '' TERM; sleep 300"
    result, handler = run(["/bin/sh", "-c", script], timeout=0.5, grace=0.5)
    assert result.timed_out
    assert step_outcome(result, False).details == {"reason": "timeout"}
    background = int(pids.read_text())
    deadline = time.monotonic() + 5
    while alive(background) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(background)


def test_stop_is_sigterm_first_then_sigkill_after_the_grace(tmp_path):
    marker = tmp_path / "termed"
    script = f"trap 'echo yes > {marker}' TERM; while :; do sleep 0.05; done"
    started = time.monotonic()
    result, _ = run(["/bin/sh", "-c", script], grace=0.7, after=(0.3, HandlerRun.stop))
    assert result.exit_status == -signal.SIGKILL and not result.timed_out
    assert marker.read_text() == "yes\n"
    assert time.monotonic() - started >= 0.9


def test_a_group_that_obeys_sigterm_ends_at_once():
    started = time.monotonic()
    result, _ = run(["/bin/sh", "-c", "sleep 300"], grace=10, after=(0.2, HandlerRun.stop))
    assert result.exit_status == -signal.SIGTERM
    assert time.monotonic() - started < 5


def test_ticks_come_while_it_runs():
    ticks = []
    run(["/bin/sh", "-c", "sleep 0.4"], on_tick=lambda: ticks.append(1))
    assert len(ticks) >= 3


def test_environment_is_the_allowlist_plus_the_job():
    os.environ["API_SECRET_FOR_TEST"] = "leak"
    try:
        env = step_environment("job-9", 4, "/w/document.json", "/w/result.json", None)
    finally:
        del os.environ["API_SECRET_FOR_TEST"]
    result, _ = run(["/usr/bin/env"], env=env)
    lines = set(result.stdout.decode().splitlines())
    assert {"JOB_ID=job-9", "JOB_EXECUTION_NUMBER=4", "JOB_DOCUMENT=/w/document.json",
            "JOB_RESULT_FILE=/w/result.json"} <= lines
    assert not any(line.startswith("API_SECRET") for line in lines)


def test_run_as_user():
    nobody = account("nobody")
    assert nobody.uid == pwd.getpwnam("nobody").pw_uid
    env = step_environment("j", 1, "/d", "/r", nobody)
    result, _ = run(["/bin/sh", "-c", "id -u; echo $USER"], env=env, user=nobody)
    assert result.stdout.decode().split() == [str(nobody.uid), "nobody"]
    with pytest.raises(StepRefused, match="no such user"):
        account("no-such-user-here")
    assert account("") is None


def test_a_refused_argument_is_a_cannot_start():
    with pytest.raises(CannotStart):
        run(["/bin/echo", "a\0b"])
    with pytest.raises(CannotStart):
        run(["/nonexistent/handler"])


def test_step_argv(tmp_path):
    os.chmod(tmp_path, 0o755)
    handler = tmp_path / "h.sh"
    handler.write_text("#!/bin/sh\n")
    os.chmod(handler, 0o700)
    step = Step("s", RUN_HANDLER, "h.sh", ("a", "b"))
    assert step_argv(step, str(tmp_path), False) == [str(handler), "a", "b"]
    with pytest.raises(StepRefused, match="no handler"):
        step_argv(Step("s", RUN_HANDLER, "none", ()), str(tmp_path), False)
    command = Step("c", RUN_COMMAND, "", ("echo", "x"))
    with pytest.raises(StepRefused, match="allow-commands"):
        step_argv(command, str(tmp_path), False)
    assert COMMANDS_REFUSED
    assert step_argv(command, str(tmp_path), True) == ["echo", "x"]
