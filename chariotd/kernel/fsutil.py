"""Crash-safe file writes: temp file in the same directory, fsync, rename, directory fsync."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List


def fsync_dir(directory) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Replace PATH with DATA so that readers see the old or the new content, never a mix.

    The temp file is created with MODE (its 07000 bits dropped) from the start (a private key is never
    readable by others, not even for an instant). On any failure the temp file is
    removed and the target is untouched. DURABLE (the default, and the daemon's only
    use) also survives a power cut: fsync of the file and of its directory.
    """
    path = Path(path)
    mode &= 0o777  # never setuid, setgid or sticky, whatever the caller passed
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    # O_EXCL|O_NOFOLLOW: never write through a file or symlink someone else put under
    # the temp name (an outfile directory may be writable by other users). One left by
    # an earlier crash of the same pid is removed and the open tried once more.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, mode)
    except FileExistsError:
        os.unlink(tmp)
        fd = os.open(tmp, flags, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def replace_symlink(link, target: str) -> None:
    """Point LINK at TARGET atomically (a new symlink renamed over the old one)."""
    link = Path(link)
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def remove_stale_temps(path) -> List[str]:
    """Remove the temp names `write_file_atomic` and `replace_symlink` use for PATH
    (`.NAME.tmp-PID`) that a process killed between creating and renaming one left
    beside it; ours (this pid) is left alone. Call it at start, before writing PATH.
    Returns the names removed; what cannot be removed is skipped."""
    path = Path(path)
    prefix = f".{path.name}.tmp-"
    removed: List[str] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        pid = entry.name[len(prefix):]
        if not entry.name.startswith(prefix) or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(entry.name)
    return removed
