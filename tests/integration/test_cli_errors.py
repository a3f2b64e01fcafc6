"""Bad configuration: one clear line on stderr and exit status 2, nothing started."""

from __future__ import annotations

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
    assert result.returncode == 2 and "is not host or host:port" in result.stderr
    result = run("--clientid=dev1", f"--cacert={tmp_path / 'nope.pem'}", f"--certstore={store}")
    assert result.returncode == 2 and (
        f"--cacert={tmp_path / 'nope.pem'}: No such file or directory" in result.stderr)


def test_version_and_help():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"chariotd {__version__}"
    result = run("--help")
    assert result.returncode == 0
    for flag in ("--clientid", "--messages", "--default-message-concurrency", "--fleetprov",
                 "--subscribe-write", "--tunnelmappings", "--keepalive", "--log-level"):
        assert flag in result.stdout
