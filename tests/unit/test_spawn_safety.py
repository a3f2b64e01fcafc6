"""One way to start a child (chariotd/kernel/spawn.py): the allowlisted environment, and text
that cannot reach exec refused before fork, never an exception out of the spawner."""

from __future__ import annotations

import os
import signal
import time

import pytest

from chariotd.kernel import spawn
from chariotd.kernel.loop import Loop
from chariotd.kernel.spawn import CannotStart, Spawner, child_environment, refusal, start
from support import alive, wait_until


@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def run(loop, argv, **options):
    """Spawner.run from a real loop; (the Result, what run returned)."""
    results = []

    def done(result):
        results.append(result)
        loop.stop(0)

    loop.call_later(10, lambda: loop.stop(1))  # a safety net, never reached
    pid = Spawner(loop).run(argv, done, timeout=5, **options)
    assert loop.run() == 0 and len(results) == 1
    return results[0], pid


# -- the environment ----------------------------------------------------------------------
def test_the_allowlist_drops_what_a_denylist_let_through():
    inherited = {"PATH": "/opt/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
                 "LC_TIME": "en_GB.UTF-8", "TZ": "UTC", "API_KEY": "k", "DB_PASS": "p",
                 "SSH_AUTH_SOCK": "/tmp/agent", "LD_PRELOAD": "/x.so", "PYTHONPATH": "/y",
                 "TERM": "xterm", "NOTIFY_SOCKET": "/run/n", "AWS_PROFILE": "a"}
    env = child_environment({"MESSAGE_TOPIC": "t"}, inherited=inherited)
    assert env == {"PATH": "/opt/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
                   "LC_TIME": "en_GB.UTF-8", "TZ": "UTC", "MESSAGE_TOPIC": "t"}
    assert child_environment(inherited={})["PATH"] == spawn.DEFAULT_PATH


def test_a_real_child_gets_only_the_allowlist(loop, monkeypatch):
    for name in ("API_KEY", "DB_PASS", "SSH_AUTH_SOCK"):
        monkeypatch.setenv(name, "s3cret")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    result, _ = run(loop, ["/bin/sh", "-c", "env"], capture_stdout=True,
                    env={"MESSAGE_TOPIC": "a/b"})
    lines = set(result.stdout.decode().splitlines())
    assert "PATH=/usr/bin:/bin" in lines and "MESSAGE_TOPIC=a/b" in lines
    assert b"s3cret" not in result.stdout
    names = {line.split("=", 1)[0] for line in lines}
    assert names - {"PWD", "SHLVL", "_"} <= (set(spawn.ALLOWED_ENVIRONMENT) | {
        "MESSAGE_TOPIC"} | {n for n in names if n.startswith("LC_")})


# -- refusals (pure) ----------------------------------------------------------------------
@pytest.mark.parametrize("argv,env,expected", [
    (["/bin/echo", "a\0b"], {}, "argument 1 'a\\x00b' holds a NUL at character 1"),
    (["/bin/echo\0"], {}, "argument 0 '/bin/echo\\x00' holds a NUL"),
    (["/bin/echo", "\ud800"], {}, "argument 1 '\\ud800' holds text that cannot be encoded"),
    (["/bin/true"], {"MESSAGE_TOPIC": "s\0x"},
     "environment variable MESSAGE_TOPIC 's\\x00x' holds a NUL at character 1"),
    (["/bin/true"], {"AWSIOT_TUNNEL_REGION": "us-east-1\0x"},
     "environment variable AWSIOT_TUNNEL_REGION 'us-east-1\\x00x' holds a NUL"),
    (["/bin/true"], {"X": "\udfff"}, "environment variable X '\\udfff' holds text that"),
    (["/bin/true"], {"A=B": "1"}, "environment variable name 'A=B' is not a variable name"),
    (["/bin/true"], {"": "1"}, "environment variable name '' is not a variable name"),
    (["/bin/true"], {"N\0": "1"}, "environment variable name 'N\\x00' holds a NUL"),
    (["/bin/true"], {"X": None}, "environment variable X is a NoneType, not text"),
    ([], {}, "no command"),
])
def test_what_cannot_reach_exec_is_named_escaped(argv, env, expected):
    reason = refusal(argv, env)
    assert reason is not None and reason.startswith(expected), reason
    assert "\0" not in reason and reason.isprintable()


def test_a_secret_value_is_never_shown():
    reason = refusal(["/p"], {"AWSIOT_TUNNEL_ACCESS_TOKEN": "tok-s3cret\0x"})
    assert reason == ("environment variable AWSIOT_TUNNEL_ACCESS_TOKEN holds a NUL at "
                      "character 10")


def test_a_long_value_is_cut():
    reason = refusal(["/p", "x" * 10000 + "\0"], {})
    assert len(reason) < 200 and "..." in reason


def test_undecodable_file_name_bytes_are_passed_as_those_bytes():
    # os.listdir gives them as U+DC80..U+DCFF (surrogateescape); exec takes them back
    name = os.fsdecode(b"/m/new/caf\xe9")
    assert refusal(["/bin/true"], {"MESSAGE_FILENAME": name}) is None


# -- refusals through the spawner: on_done, never an exception ----------------------------
@pytest.mark.parametrize("argv,env", [
    (["/bin/sh", "-c", "echo a\0b"], None),
    (["/bin/sh", "-c", "true"], {"MESSAGE_TOPIC": "t\0"}),
    (["/bin/sh", "-c", "true", "\ud800"], None),
    (["/bin/sh", "-c", "true"], {"MESSAGE_PRIORITY_SLOT": "\udc00x"}),
])
def test_the_spawner_refuses_before_fork_and_calls_on_done(loop, argv, env):
    result, pid = run(loop, argv, env=env)
    assert pid is None and not result.ok and result.status is None
    assert result.describe().startswith("was not started: ")
    assert "\0" not in result.describe() and result.describe().isprintable()


def test_a_missing_program_is_not_a_refusal(loop, tmp_path):
    result, pid = run(loop, [str(tmp_path / "missing")])
    assert pid is None and result.refused is None and result.status == 127
    assert b"No such file" in result.stderr


def test_start_raises_cannot_start_only():
    with pytest.raises(CannotStart) as raised:
        start(["/bin/true"], {"TOKEN": "a\0b"})
    assert raised.value.refused and "TOKEN holds a NUL" in str(raised.value)
    with pytest.raises(CannotStart) as raised:
        start(["/nonexistent/prog"], {})
    assert not raised.value.refused and "No such file" in str(raised.value)


def test_start_with_parent_gets_sigterm_when_its_parent_dies(tmp_path):
    """The tunnel proxy's PR_SET_PDEATHSIG, through the one spawner: a middle process
    starts a child WITH_PARENT and is SIGKILLed; the child gets SIGTERM."""
    pidfile = tmp_path / "child.pid"
    middle = os.fork()
    if middle == 0:  # pragma: no cover - the middle process
        try:
            child = start(["/bin/sh", "-c", "sleep 30"], child_environment(),
                          stderr=2, with_parent=True)
            pidfile.write_text(str(child.pid))
            time.sleep(30)
        finally:
            os._exit(0)
    child = int(wait_until(lambda: pidfile.exists() and pidfile.read_text(),
                           message="the child started"))
    os.kill(middle, signal.SIGKILL)
    os.waitpid(middle, 0)
    wait_until(lambda: not alive(child), timeout=5, message="the child got SIGTERM")
