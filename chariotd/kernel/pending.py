"""Markers of notify commands that must run to the end: `.NAME.notify-pending` beside
the file the command announces (a service's outfile, the certstore's provisioning).

A marker is made before the file it announces is replaced, so the fsync of that
directory makes both durable; it is removed when the command has finished. A marker
found at start means chariotd stopped in between: the command is run again. Markers
are only created (O_EXCL) and removed, never opened once they exist: a symlink or a
FIFO someone puts in their place is never followed or waited on.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def marker_path(path: str) -> str:
    head, tail = os.path.split(str(path))
    return os.path.join(head, f".{tail}.notify-pending")


def mark(path: str) -> None:
    """Leave PATH's marker. Whatever is already at the marker's name (our marker, or a
    FIFO or link someone planted) counts as the marker and is never opened."""
    try:
        fd = os.open(marker_path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL
                     | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    except OSError as error:
        log.warning("cannot mark %s as waiting for its notify command: %s", path,
                    error.strerror or error)
        return
    os.close(fd)


def is_marked(path: str) -> bool:
    return os.path.lexists(marker_path(path))


def clear(path: str) -> None:
    try:
        os.unlink(marker_path(path))
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warning("cannot remove %s: %s", marker_path(path), error.strerror or error)
