"""Bad configuration: one clear line on stderr and exit status 2, nothing started."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from chariotd import __version__
from support import CHARIOTD


def run(*args, timeout=10):
    return subprocess.run([CHARIOTD, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def good(test_pki, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "endpoint.txt").write_text("example.com\n")
    return ["--clientid=dev1", f"--cacert={test_pki.cafile}", f"--certstore={store}"]


CASES = [
    ([], "--clientid is required"),
    (["--clientid=x"], "--cacert is required"),
    (["@good", "--services=MyThing:@tmp/nowhere"], "not a directory"),
    (["@good", "--services=bad thing:/tmp"], "is not a valid thing name"),
    (["@good", "--updates=MyThing"], "expected THING:VALUE"),
    (["@good", "--fleetprov=@tmp/nowhere.json"],
     "--fleetprov=@tmp/nowhere.json: cannot read: No such file or directory"),
    (["@good", "--messages=/tmp/m", "--message-order=/tmp/m:random"],
     "--message-order=/tmp/m:random: must be one of lexical, reverse-lexical"),
    (["@good", "--messages=/tmp/m", "--letterhead-file=/tmp/m:/f",
      "--letterhead-generator=/tmp/m:/g"], "give one letterhead per directory"),
    (["@good", "--messages=@tmp/m", "--message-concurrency=/elsewhere:3"],
     "expected DIR:VALUE with DIR one of the --messages directories"),
    (["@good", "--messages=@tmp/m", "--message-concurrency=@tmp/m:zero"],
     "--message-concurrency="),
    (["@good", "--default-message-retries=-1"], "must not be negative"),
    (["@good", "--bogus"], "unrecognized arguments: --bogus"),
    (["@good", "--messsages=@tmp/m"],
     "unrecognized arguments: --messsages=@tmp/m; did you mean --messages?"),
    (["@good", "--last-will-topic=a/#", "--last-will-payload=x"], "wildcard"),
    (["@good", "--last-will-topic=a/b"], "go together"),
    (["@good", "--keepalive=-3"], "--keepalive"),
    (["@good", "--tunnelmappings=thing"], "expected THING:SVC=PORT[,SVC=PORT...]"),
    (["@good", "--tunnelmappings=thing:SSH"], "'SSH' is not SVC=PORT"),
    (["@good", "--tunnelmappings=dev1:SSH=22", "--tunnelcadir=@tmp/nowhere"],
     "--tunnelcadir: @tmp/nowhere is not a directory"),
    (["@good", "--subscribe-write=a/#/b:/run/fifo"], "'#' must be a whole last level"),
    (["@good", "--subscribe-exec=a/b:handler"], "expected TOPIC:PATH with an absolute PATH"),
    (["@good", "--defender=dev1", "--defender-interval=120"],
     "--defender-interval: 300 to 86400 seconds"),
    (["@good", "--defender=dev1", "--defender-custom=@tmp/nowhere"],
     "--defender-custom: @tmp/nowhere is not a directory"),
]


@pytest.mark.parametrize("args,expected", CASES)
def test_bad_command_lines(good, tmp_path, args, expected):
    expanded = []
    for arg in args:
        if arg == "@good":
            expanded += good
        else:
            expanded.append(arg.replace("@tmp", str(tmp_path)))
    result = run(*expanded)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("chariotd: error: ")
    assert expected.replace("@tmp", str(tmp_path)) in lines[0]


def test_certstore_problems(test_pki, tmp_path):
    store = tmp_path / "store"
    base = ["--clientid=dev1", f"--cacert={test_pki.cafile}", f"--certstore={store}"]
    result = run(*base)
    assert result.returncode == 2 and "is not a directory" in result.stderr
    store.mkdir()
    result = run(*base)
    assert result.returncode == 2 and "cannot read endpoint.txt" in result.stderr
    (store / "endpoint.txt").write_text("host:notaport\n")
    result = run(*base)
    assert result.returncode == 2 and "the port is not a number" in result.stderr
    # What the AWS console shows is a URL; an exit 2 at start, not a retry loop.
    (store / "endpoint.txt").write_text("https://abc-ats.iot.eu-west-1.amazonaws.com\n")
    result = run(*base)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("chariotd: error: --certstore: endpoint "
                                    "'https://abc-ats.iot.eu-west-1.amazonaws.com' is a URL")
    (store / "endpoint.txt").write_text("abc-ats.iot.eu-west-1.amazonaws.com\nx.example\n")
    result = run(*base)
    assert result.returncode == 2 and "endpoint.txt holds 2 lines" in result.stderr
    result = run("--clientid=dev1", f"--cacert={tmp_path / 'nope.pem'}", f"--certstore={store}")
    assert result.returncode == 2 and (
        f"--cacert={tmp_path / 'nope.pem'}: No such file or directory" in result.stderr)


def test_version_and_help():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"chariotd {__version__}"
    result = run("--help")
    assert result.returncode == 0
    for flag in ("--clientid", "--messages", "--default-message-concurrency", "--fleetprov",
                 "--subscribe-write", "--tunnelmappings", "--keepalive", "--log-level",
                 "--message-concurrency DIR:VALUE"):
        assert flag in result.stdout
    assert "(repeatable)" in result.stdout and "\nexit status:\n  0  " in result.stdout
    assert "\nexamples:\n" in result.stdout


def test_configuration_errors_carry_their_journald_priority(good):
    """Under systemd a configuration error is `<3>`, so `journalctl -p warning` shows it;
    control characters in it are escaped like in every other line."""
    result = subprocess.run([CHARIOTD, *good, "--updates=My\x1b[2JThing"], capture_output=True,
                            text=True, timeout=10,
                            env=dict(os.environ, JOURNAL_STREAM="8:12345"))
    assert result.returncode == 2
    assert result.stderr == ("<3>chariotd: error: --updates=My\\x1b[2JThing: "
                             "expected THING:VALUE\n")


def test_a_terminal_gets_timestamps(good):
    """stderr on a terminal: each line starts with the local time; under runit or
    journald (a pipe) it does not (test_logs.py)."""
    controller, terminal = os.openpty()
    try:
        process = subprocess.run([CHARIOTD, *good, "--keepalive=-1"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=terminal, timeout=10)
        os.close(terminal)
        terminal = None
        output = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            output += chunk
    finally:
        if terminal is not None:
            os.close(terminal)
        os.close(controller)
    assert process.returncode == 2
    line = output.decode().rstrip("\r\n")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} chariotd: error: "
                        r"--keepalive: must be between 0 and 65535 seconds", line), line
