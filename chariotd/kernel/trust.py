"""Whom chariotd trusts for what it runs as root (sshd's StrictModes): a file or
directory that names or holds a program the daemon runs must be owned by root or the
daemon's user and not writable by group or others; otherwise whoever can write there
could choose what root runs. Service definitions and job handlers follow this rule.

`untrusted` judges one stat result; `untrusted_path` also judges every directory above
a path (a writable parent lets someone rename the directory away and put their own in
its place), where a root-owned sticky directory such as /tmp is fine: nobody else may
rename what it holds.
"""

from __future__ import annotations

import os
import stat
from typing import Optional, Tuple


def trusted_owners() -> Tuple[int, ...]:
    """The owners a trusted file or directory may have: root and the daemon's user."""
    return tuple(sorted({0, os.geteuid()}))


def _owner_names(owners: Tuple[int, ...]) -> str:
    return " or ".join("root" if uid == 0 else f"uid {uid}" for uid in owners)


def untrusted(st: os.stat_result, what: str, because: str) -> Optional[str]:
    """Why a file or directory with status ST is not trusted, or None when it is.
    WHAT names it in the reason ("the file", "its directory"); BECAUSE says why the
    rule holds ("a definition names a command run as root")."""
    owners = trusted_owners()
    if st.st_uid in owners and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return (f"not trusted: {what} is owned by uid {st.st_uid} with mode "
            f"{stat.S_IMODE(st.st_mode):04o}; it must be owned by {_owner_names(owners)} "
            f"and not writable by group or others ({because})")


def _untrusted_parent(st: os.stat_result, path: str, because: str) -> Optional[str]:
    """A parent directory is trusted like the rest, or when it is root's and sticky."""
    if st.st_uid == 0 and st.st_mode & stat.S_ISVTX:
        return None
    return untrusted(st, f"the directory {path} above it", because)


def untrusted_path(path: str, because: str) -> Optional[str]:
    """Why the directory PATH (followed if a link: its real place is judged) or any
    directory above it is not trusted, or None. OSError when it cannot be examined."""
    real = os.path.realpath(path)
    st = os.stat(real)
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    problem = untrusted(st, f"the directory {path}", because)
    if problem:
        return problem
    parent = real
    while parent != "/":
        parent = os.path.dirname(parent)
        problem = _untrusted_parent(os.stat(parent), parent, because)
        if problem:
            return problem
    return None
