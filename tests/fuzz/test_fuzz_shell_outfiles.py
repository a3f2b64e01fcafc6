"""Fuzz: SHELL input (update files and outfiles read back), and the safety property of
SHELL outfiles: whatever desired values the cloud sends, after every change the applier
accepts (the real ShadowSync -> Service -> reconcile -> SHELL stringify -> outfile
path), sourcing the outfile in bash and in dash runs nothing, and bash reads back
exactly the values the shadow holds."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from chariotd.formats import FormatError, shell

from fake_applier import FakeApplier
from fuzz_values import fuzz_settings, mutated, text

BASH, DASH = shutil.which("bash"), shutil.which("dash")

ATTACKS = ["$(touch pwned)", "`touch pwned`", "'; touch pwned; '", "'\ntouch pwned\n'",
           "\"; touch pwned; \"", "$(printf x > pwned)", "\\'$(touch pwned)\\'",
           "${x:=$(touch pwned)}", "'\"'\"'$(touch pwned)", "\n", "\r\n", "'", "\\",
           "!!", "~root", "*", "?", "[a]", "{a,b}", "a b", "\t", "#", ";", "&", "|",
           "\x1b]0;x\x07", "é", "\u2028"]
words = st.one_of(st.sampled_from(ATTACKS), text.filter(lambda t: "\0" not in t),
                  st.lists(st.sampled_from(ATTACKS), min_size=1, max_size=3).map("".join))
names = st.one_of(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True),
                  st.sampled_from(["PATH", "IFS", "PS4", "ENV", "BASH_ENV", "LD_PRELOAD",
                                   "HOME", "_", "a-b", "a b", "$x", "1a", "x_y"]))
leaves = st.one_of(words, st.booleans(), st.integers(), st.floats(allow_nan=False,
                                                                   allow_infinity=False),
                   st.just("DELETE"), st.none(),
                   st.lists(st.one_of(words, st.integers(), st.booleans()), max_size=3))
configs = st.dictionaries(names, st.recursive(
    leaves, lambda inner: st.dictionaries(names, inner, max_size=3), max_leaves=6),
    min_size=1, max_size=4)


def source(shell_path: str, outfile: Path, workdir: Path, names) -> subprocess.CompletedProcess:
    """Source OUTFILE in SHELL_PATH from WORKDIR, then print each of NAMES NUL-ended."""
    printing = "".join(f'printf "%s\\0" "${name}"; ' for name in names)
    return subprocess.run([shell_path, "-c", f'. "$1" && {printing}printf "done"',
                           "sh", str(outfile)], cwd=workdir, capture_output=True,
                          env={"PATH": "/usr/bin:/bin"}, timeout=10)


@pytest.mark.skipif(BASH is None or DASH is None, reason="bash and dash are needed")
@fuzz_settings(60)
@given(st.lists(configs, min_size=1, max_size=3))
def test_sourcing_any_accepted_outfile_runs_nothing(changes):
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        workdir = root / "work"
        workdir.mkdir()
        fake = FakeApplier(root)
        outfile = fake.out / "cfgshell"
        fake.link_up()
        fake.get_accepted({})
        last = None
        for version, desired in enumerate(changes, start=2):
            fake.respond_json("update", "delta", {"state": {"cfgshell": desired},
                                                  "version": version})
            fake.accept_update()
            if not outfile.exists() or outfile.read_bytes() == last:
                continue  # refused (logged) or nothing changed: nothing to source
            last = outfile.read_bytes()
            event("an accepted change was sourced")
            flat = shell.flatten(shell.parse(outfile.read_bytes().decode("utf-8")))
            scalars = sorted(name for name, value in flat.items() if isinstance(value, str))
            result = source(BASH, outfile, workdir, scalars)
            assert result.returncode == 0, result.stderr
            values = result.stdout.split(b"\0")
            assert values[-1] == b"done" and result.stderr == b""
            assert [v.decode() for v in values[:-1]] == [flat[name] for name in scalars]
            result = source(DASH, outfile, workdir, scalars)
            if not any(isinstance(v, list) for v in flat.values()):
                assert result.returncode == 0 and result.stdout.endswith(b"done"), result
            assert list(workdir.iterdir()) == [], "sourcing the outfile ran something"


@fuzz_settings(400)
@given(st.one_of(st.text(max_size=200), mutated(st.sampled_from([
    b"a='1'\nb=('x' 'y')\nc_d='it'\\''s'\n", b"export a=\"x\\\"y\" # c\n", b"a='it\\'s'\n",
    b"a=1; b=2\nc=\\\n3\n"])).map(lambda b: b.decode("utf-8", "replace"))))
def test_shell_input(text):
    """An update file in informat SHELL, or an outfile read back: a value or a
    FormatError, never an expansion performed."""
    try:
        value = shell.parse(text)
    except FormatError:
        return
    assert isinstance(value, dict)


def test_shell_input_is_read_in_bounded_time():
    """The legacy-quote backtracking never explodes on hostile text (1 MiB update files
    are accepted)."""
    import time
    for text in ("a='\\''\n" * 150000, "a='x\\'" * 20000, "a='" + "\\'" * 50000, ("a='\\''\n" * 20000),
                 "a=" + "'x' " * 20000, "a_" * 50000 + "=1"):
        started = time.monotonic()
        try:
            shell.parse(text)
        except FormatError:
            pass
        assert time.monotonic() - started < 5, text[:20]
