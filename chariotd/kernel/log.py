"""One line per event on stderr: `role: message`, or `role: warning: message`.

Every line the daemon writes goes through `RoleFormatter`, configuration errors
included (main.py logs them): under systemd (JOURNAL_STREAM set) each line starts with
a `<N>` syslog priority so journald keeps the level (`journalctl -p warning`). A
timestamp only when stderr is a terminal: runit's svlogd and journald add their own.

Messages carry text from hostile places (file names in action directories, topics,
a command's stderr), so the formatter escapes every control character in them
(`escape_controls`): one event is one line, and no input can fake a line, move the
cursor of a terminal showing the log, or reorder text with bidi controls.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time

LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO,
          "debug": logging.DEBUG}

_SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4,
                    logging.INFO: 6, logging.DEBUG: 7}


# Every character of Unicode categories Cc (C0, DEL, C1 with NEL), Cf (invisible
# and bidi controls, tags), Cs (lone surrogates, as undecodable bytes become) and
# Zl/Zp (U+2028, U+2029); tests/unit/test_log_escape.py holds it to unicodedata.
_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f"
    "\ud800-\udfff\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: "re.Match[str]") -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_controls(text: str) -> str:
    """TEXT with each control character written as an escape (`\\r`, `\\x1b`, `\\u2028`):
    the result holds no line break and nothing a terminal acts on."""
    if text.isprintable():  # the usual case, at C speed: none of them is printable
        return text
    return _CONTROLS.sub(_escape, text)


def _folded(text: str) -> str:
    """Our own multi-line text (a traceback) as one line: its lines joined by " | "."""
    return " | ".join(escape_controls(line) for line in text.split("\n"))


def stamp(created: float) -> str:
    """CREATED (seconds since the epoch) as local `YYYY-MM-DD HH:MM:SS.mmm`."""
    whole = int(created)
    return (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(whole))
            + f".{int((created - whole) * 1000):03d}")


class RoleFormatter(logging.Formatter):
    def __init__(self, role: str, journal: bool, timestamps: bool = False):
        super().__init__()
        self.role = role
        self.journal = journal
        self.timestamps = timestamps and not journal

    def format(self, record: logging.LogRecord) -> str:
        # Escaped after the arguments are put in, so every argument is covered.
        message = escape_controls(record.getMessage())
        if record.exc_info:
            message += " | " + _folded(self.formatException(record.exc_info))
        if record.stack_info:
            message += " | " + _folded(record.stack_info)
        if record.levelno >= logging.WARNING:
            message = f"{record.levelname.lower()}: {message}"
        line = f"{self.role}: {message}"
        if self.journal:
            line = f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{line}"
        elif self.timestamps:
            line = f"{stamp(record.created)} {line}"
        return line


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # closed or not a real stream
        return False


def setup(role: str, level: str = "info") -> None:
    """Route the root logger to stderr for this process's ROLE (called again after fork)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RoleFormatter(role, bool(os.environ.get("JOURNAL_STREAM")),
                                       _is_terminal(sys.stderr)))
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level, logging.INFO))
    # paho logs nothing we need at info; keep third parties quiet.
    logging.getLogger("paho").setLevel(logging.WARNING)


def rename_role(role: str) -> None:
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, RoleFormatter):
            formatter.role = role
