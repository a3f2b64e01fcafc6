"""Reading and writing service outfiles (crash-safe: temp file, fsync, rename)."""

from __future__ import annotations

import logging
import os
import stat
from typing import Optional

from chariotd.fsutil import write_file_atomic

log = logging.getLogger(__name__)

MAX_OUTFILE = 1 << 20


class Unreadable(Exception):
    """The outfile exists but cannot be read as text; the message says why. An
    unreadable outfile is never taken as empty configuration."""


def read_text(path: str) -> Optional[str]:
    """The outfile's text, or None when it does not exist. Raises Unreadable when
    something is there that cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_OUTFILE + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise Unreadable(f"cannot read {path}: {error.strerror}") from None
    if len(data) > MAX_OUTFILE:
        raise Unreadable(f"{path} is larger than {MAX_OUTFILE} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(f"{path} is not UTF-8 text") from None


def write_text(path: str, text: str) -> None:
    """Replace PATH with TEXT atomically, keeping the old file's permission bits."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o644
    write_file_atomic(path, text.encode("utf-8"), mode=mode)
