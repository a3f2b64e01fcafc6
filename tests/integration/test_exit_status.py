"""Exit statuses of the tree (DESIGN.md section 6), for the ways a child can end that
the real roles cannot be made to show on demand: the real Supervisor forks stand-in
roles in a subprocess. (The real tree's 0 on SIGTERM/SIGINT and 1 on a child killed are
in test_tree.py, 2 on configuration errors in test_cli_errors.py, 1 on repeated
connection failures and on no certificate in test_connection.py, 1 on a jammed queue in
test_messages.py.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from chariotd.supervisor import EXIT_STATUSES, GRACE
from support import alive, wait_until

DRIVER = textwrap.dedent("""
    import os, signal, sys
    from chariotd.kernel import log
    from chariotd.config import Config
    from chariotd.kernel.runtime import Role
    from chariotd.supervisor import Supervisor

    case, pidfile = sys.argv[1], sys.argv[2]

    def bystander(context):
        if case == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
        return context.loop.run()

    def ending(context):
        def end():
            if case == "crash":
                raise RuntimeError("boom")
            context.loop.stop(int(case))
        if case != "stubborn":
            context.loop.call_later(0.3, end)
        return context.loop.run()

    log.setup("chariotd", "debug")
    roles = [Role("a", "chariotd: test a", "a", bystander),
             Role("b", "chariotd: test b", "b", ending)]
    sys.exit(Supervisor(Config("dev1", "ca", "store"), roles).run())
""")


def run_tree(tmp_path, case: str):
    pidfile = tmp_path / "bystander.pid"
    process = subprocess.Popen([sys.executable, "-c", DRIVER, case, str(pidfile)],
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    bystander = int(wait_until(lambda: pidfile.exists() and pidfile.read_text(),
                               message="the bystander role started"))
    return process, bystander


# Statuses 0, 2, 3 -> 1 and 1, SIGSEGV, and the SIGKILL after GRACE are held in-process
# by tests/unit/roles/test_role_supervisor.py (the same Supervisor and child_main, with
# no log text); here the subprocess tree also shows the log lines users read.
@pytest.mark.parametrize("case,expected", [
    ("2", 2),      # a role that found a configuration error
    ("crash", 1),  # an unexpected exception: traceback logged, status 1
])
def test_the_first_child_to_end_decides_the_status(tmp_path, case, expected):
    process, bystander = run_tree(tmp_path, case)
    try:
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == expected, stderr
    assert not alive(bystander)
    assert "b (pid " in stderr and "stopping the others" in stderr
    if case == "crash":
        assert "b: error: crashed: Traceback" in stderr and "RuntimeError: boom" in stderr


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    process, bystander = run_tree(tmp_path, "stubborn")
    try:
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        took = time.monotonic() - started
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "a did not stop in time; killed" in stderr
    assert GRACE * 0.9 <= took < GRACE + 3
    assert not alive(bystander)


def test_the_documented_statuses():
    assert sorted(EXIT_STATUSES) == [0, 1, 2]
