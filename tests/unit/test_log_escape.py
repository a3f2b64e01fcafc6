"""Log lines: every control character in a message or an argument is escaped, so one
event is one line whatever the input (file names, topics, a command's stderr)."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from chariotd.kernel import log
from chariotd.kernel.log import RoleFormatter, escape_controls
from chariotd.sim import log as sim_log

ESCAPED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def is_control(char: str) -> bool:
    return unicodedata.category(char) in ESCAPED_CATEGORIES


def record(message, *args, level=logging.INFO, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("chariotd.test", level, __file__, 1, message, args, exc_info)


def test_every_control_character_of_unicode_is_escaped():
    controls = [chr(c) for c in range(sys.maxunicode + 1) if is_control(chr(c))]
    assert len(controls) > 2000  # C0, C1, the surrogates, the format characters
    escaped = escape_controls("".join(controls))
    assert escaped.isascii() and escaped.isprintable()
    # Nothing else is touched: letters, spaces, emoji, backslashes, quotes.
    plain = "".join(chr(c) for c in range(0x20, 0x3000) if not is_control(chr(c)))
    assert escape_controls(plain + "😀 \\x1b '\"") == plain + "😀 \\x1b '\""


def test_escapes_are_readable():
    assert escape_controls("a\rb\nc\td") == "a\\rb\\nc\\td"
    assert escape_controls("\x1b[2J\x00\x7f\x85") == "\\x1b[2J\\x00\\x7f\\x85"
    assert escape_controls("x\u2028y\u202ez\udcff") == "x\\u2028y\\u202ez\\udcff"
    assert escape_controls("\U000e0041") == "\\U000e0041"


@given(st.text(), st.text(), st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING,
                                              logging.ERROR]), st.booleans())
def test_any_message_and_argument_is_one_line_without_controls(message, argument, level,
                                                               journal):
    line = RoleFormatter("watch /x", journal).format(
        record(message.replace("%", "%%") + " %s", argument, level=level))
    assert len(line.splitlines()) == 1 and "\n" not in line
    assert not any(is_control(c) for c in line)
    assert line.startswith("<" if journal else "watch /x: ")


def test_journal_prefix_is_kept():
    line = RoleFormatter("link", True).format(record("file %s", "\x1b\r", level=logging.ERROR))
    assert line == "<3>link: error: file \\x1b\\r"


def test_a_traceback_is_folded_into_the_same_line():
    try:
        raise ValueError("bad\r\nname\x1b")
    except ValueError:
        info = sys.exc_info()
    line = RoleFormatter("applier", False).format(
        record("failed on %s", "f\u2028", level=logging.ERROR, exc_info=info))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line.startswith("applier: error: failed on f\\u2028 | Traceback")
    assert line.endswith("ValueError: bad\\r | name\\x1b")  # its own lines folded


def test_setup_routes_escaped_lines_to_stderr(capfd):
    log.setup("watch /u")
    try:
        logging.getLogger("chariotd.x").warning("file %s moved", "a\rb\x1b]0;t\x07")
    finally:
        logging.getLogger().handlers.clear()
    assert capfd.readouterr().err == "watch /u: warning: file a\\rb\\x1b]0;t\\x07 moved\n"


@given(st.text())
def test_the_simulators_log_is_one_line_too(text):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        sim_log.log(f"topic {text}")
    out = err.getvalue()
    assert out.endswith("\n") and out.count("\n") == 1
    assert not any(is_control(c) for c in out[:-1])


def test_timestamps_only_on_a_terminal_and_never_under_journald():
    at = record("connected", level=logging.INFO)
    at.created = 1700000000.25
    stamped = RoleFormatter("link", False, timestamps=True).format(at)
    assert stamped == f"{log.stamp(at.created)} link: connected"
    assert log.stamp(at.created).endswith(".250") and len(log.stamp(at.created)) == 23
    assert RoleFormatter("link", False).format(at) == "link: connected"
    assert RoleFormatter("link", True, timestamps=True).format(at) == "<6>link: connected"


def test_setup_stamps_when_stderr_is_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, journal, stamped in ((Terminal(), "", True), (io.StringIO(), "", False),
                                     (Terminal(), "8:1", False)):
        monkeypatch.setattr(sys, "stderr", stream)
        monkeypatch.setenv("JOURNAL_STREAM", journal)
        log.setup("chariotd")
        try:
            logging.getLogger("chariotd.test").error("bad %s", "flag\n")
        finally:
            log.setup("chariotd")
        line = stream.getvalue()
        assert line.endswith("chariotd: error: bad flag\\n\n")
        assert (line[:4].isdigit() and line[23:24] == " ") == stamped, line
        assert line.startswith("<3>") == bool(journal)


def test_debug_lines_cost_little_when_debug_is_off():
    """The guard on the per-message path: with debug off a debug line costs one level
    check, well under a microsecond (figures in the commit that added them)."""
    import timeit

    logger = logging.getLogger("chariotd.watchers.messages")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        runs = 200_000
        guarded = min(timeit.repeat(
            lambda: logger.isEnabledFor(logging.DEBUG) and logger.debug(
                "%s: publishing to %s, QoS %d (request %d)", "name", "t/x", 1, 7),
            number=runs, repeat=3)) / runs
    finally:
        root.setLevel(level)
    assert guarded < 2e-6, f"{guarded * 1e9:.0f} ns per message with debug off"
