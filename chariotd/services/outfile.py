"""Reading and writing service outfiles (crash-safe: temp file, fsync, rename).

An outfile's directory may belong to another user, so the outfile is read and its mode
taken the one safe way (chariotd/kernel/safe_open.py): a symlink, FIFO, device, directory, a
file with more than one link or over MAX_OUTFILE bytes is Unreadable at once, never
followed or waited on; the new file keeps the old one's permission bits, never 07000.
"""

from __future__ import annotations

import logging
from typing import Optional

from chariotd.kernel import safe_open
from chariotd.kernel.fsutil import write_file_atomic

log = logging.getLogger(__name__)

MAX_OUTFILE = 1 << 20
NEW_MODE = 0o644  # a new outfile's mode


class Unreadable(Exception):
    """The outfile exists but cannot be read as text; the message says why. An
    unreadable outfile is never taken as empty configuration."""


def read_text(path: str) -> Optional[str]:
    """The outfile's text, or None when it does not exist. Raises Unreadable when
    something is there that cannot be read."""
    try:
        data, _ = safe_open.read_file(path, MAX_OUTFILE, single_link=True)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise Unreadable(f"cannot read {path}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(f"{path} is not UTF-8 text") from None


def write_text(path: str, text: str) -> None:
    """Replace PATH with TEXT atomically, keeping the old file's permission bits
    (taken from the file itself, not through a symlink; 07000 never kept)."""
    mode = safe_open.permission_bits(path, NEW_MODE)
    write_file_atomic(path, text.encode("utf-8"), mode=mode)
