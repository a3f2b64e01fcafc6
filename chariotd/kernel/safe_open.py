"""Opening a path another user may control (action directories, outfiles and their
folders, markers, subscribe-write FIFOs, the certstore): the one way chariotd does it.

- No symlink is followed: `lstat` before, `O_NOFOLLOW` on the open.
- No open blocks: `O_NONBLOCK` (a FIFO with no writer, or no reader, never hangs a loop).
- The type is checked on the opened file (`fstat`), not on the name: a regular file, or
  a FIFO only where a FIFO is wanted. The `lstat` before only spares opening a device
  or a FIFO in the usual case; the `fstat` after is what decides.
- SINGLE_LINK: the file must have one link (a hard link to a root-only file, made by
  someone who cannot read it, is never read or written as root).
- Permission bits are taken from the file itself (`lstat`), never through a link, and
  the 07000 bits (setuid, setgid, sticky) are never kept.

Whatever is there but may not be used raises `Refused`, an OSError whose text says why
in words a log line can hold ("is a symbolic link", "has 2 links").
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Tuple

REGULAR = frozenset({stat.S_IFREG})
FIFO = frozenset({stat.S_IFIFO})
FIFO_OR_REGULAR = REGULAR | FIFO
PERMISSION_BITS = 0o777  # never setuid, setgid or sticky
OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

_KIND_NAMES = {stat.S_IFREG: "a regular file", stat.S_IFIFO: "a FIFO",
               stat.S_IFLNK: "a symbolic link", stat.S_IFDIR: "a directory",
               stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
               stat.S_IFSOCK: "a socket"}


class Refused(OSError):
    """Something is at the path but may not be opened as asked; str() says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.strerror = reason  # read by callers that log error.strerror

    def __str__(self) -> str:
        return self.strerror


def kind_of(mode: int) -> str:
    return _KIND_NAMES.get(stat.S_IFMT(mode), "of an unknown type")


def _check(st: os.stat_result, kinds, single_link: bool) -> None:
    if stat.S_IFMT(st.st_mode) not in kinds:
        wanted = " or ".join(sorted(kind_of(k) for k in kinds))
        raise Refused(f"is {kind_of(st.st_mode)}, not {wanted}")
    if single_link and stat.S_ISREG(st.st_mode) and st.st_nlink != 1:
        raise Refused(f"has {st.st_nlink} links; only a file with one link is used")


def open_checked(path, flags: int = os.O_RDONLY, kinds=REGULAR,
                 single_link: bool = False,
                 follow_links: bool = False) -> Tuple[int, os.stat_result]:
    """(fd, fstat) of PATH opened with FLAGS plus OPEN_FLAGS, when it is one of KINDS
    (and has one link, with SINGLE_LINK). Raises FileNotFoundError when nothing is
    there, Refused when what is there may not be opened, OSError otherwise. O_TRUNC is
    refused: truncate with os.ftruncate after the check, never before. FOLLOW_LINKS is
    only for paths no other user can change (root's own certstore): a symlink there is
    followed, the rest (no blocking, the type check) holds."""
    if flags & os.O_TRUNC:
        raise ValueError("O_TRUNC before the type check; use os.ftruncate after it")
    _check((os.stat if follow_links else os.lstat)(path), kinds, single_link)
    flags |= OPEN_FLAGS
    if follow_links:
        flags &= ~os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:  # swapped for a symlink since the lstat
            raise Refused("is a symbolic link (not followed)") from None
        raise
    try:
        st = os.fstat(fd)
        _check(st, kinds, single_link)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_file(path, limit: int, single_link: bool = False,
              follow_links: bool = False) -> Tuple[bytes, os.stat_result]:
    """(content, fstat) of the regular file PATH, at most LIMIT bytes (Refused when it
    is larger). Never blocks; never follows a symlink unless FOLLOW_LINKS."""
    fd, st = open_checked(path, os.O_RDONLY, REGULAR, single_link, follow_links)
    try:
        if st.st_size > limit:
            raise Refused(f"is {st.st_size} bytes; at most {limit} are read")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # grew since the fstat
            raise Refused(f"is over {limit} bytes; at most {limit} are read")
        return b"".join(chunks), st
    finally:
        os.close(fd)


def permission_bits(path, default: int) -> int:
    """The permission bits of the regular file at PATH (not followed if a symlink),
    07000 stripped; DEFAULT when there is none (or a link, or anything else)."""
    try:
        st = os.lstat(path)
    except OSError:
        return default & PERMISSION_BITS
    if not stat.S_ISREG(st.st_mode):
        return default & PERMISSION_BITS
    return stat.S_IMODE(st.st_mode) & PERMISSION_BITS
