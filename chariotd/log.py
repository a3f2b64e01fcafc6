"""One line per event on stderr: `role: message`, or `role: warning: message`.

Under systemd (JOURNAL_STREAM set) each line starts with a `<N>` syslog priority so
journald keeps the level. No timestamps: runit's svlogd and journald add their own.
"""

from __future__ import annotations

import logging
import os
import sys

LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO,
          "debug": logging.DEBUG}

_SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4,
                    logging.INFO: 6, logging.DEBUG: 7}


class RoleFormatter(logging.Formatter):
    def __init__(self, role: str, journal: bool):
        super().__init__()
        self.role = role
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        # One event, one line: a traceback or a multi-line reason is folded.
        message = message.replace("\n", " | ")
        if record.levelno >= logging.WARNING:
            message = f"{record.levelname.lower()}: {message}"
        line = f"{self.role}: {message}"
        if self.journal:
            line = f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


def setup(role: str, level: str = "info") -> None:
    """Route the root logger to stderr for this process's ROLE (called again after fork)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RoleFormatter(role, bool(os.environ.get("JOURNAL_STREAM"))))
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level, logging.INFO))
    # paho logs nothing we need at info; keep third parties quiet.
    logging.getLogger("paho").setLevel(logging.WARNING)


def rename_role(role: str) -> None:
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, RoleFormatter):
            formatter.role = role
