"""The action-directory engine shared by every watcher.

    DIR/tmp/     writers prepare files here
    DIR/new/     ...and move them here; we act on them
    DIR/failed/  what could not be done, the newest `keep_failed` kept

Arrivals are seen through inotify (a file moved in, or written in place and closed);
files already waiting at start, and after an inotify queue overflow, are found by a
scan in filename order. A file leaves new/ only when its request is finished.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, List, Set

from inotify_simple import INotify, flags

from chariotd.kernel import safe_open

log = logging.getLogger(__name__)

WATCH_FLAGS = flags.MOVED_TO | flags.CLOSE_WRITE


class ActionDir:
    def __init__(self, path: str, keep_failed: int = 100):
        self.path = path
        self.new = os.path.join(path, "new")
        self.failed_dir = os.path.join(path, "failed")
        self.keep_failed = keep_failed
        self.stuck: Set[str] = set()  # finished, but new/ would not let them go
        self.inotify = INotify()
        self.inotify.add_watch(self.new, WATCH_FLAGS)

    def fileno(self) -> int:
        return self.inotify.fileno()

    def scan(self) -> List[str]:
        """Names of the regular files waiting in new/, in filename order."""
        names = []
        with os.scandir(self.new) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False) and entry.name not in self.stuck:
                        names.append(entry.name)
                except OSError:
                    continue
        names.sort()
        return names

    def arrivals(self, rescan: Callable[[], None]) -> List[str]:
        """Names that arrived since the last call (non-blocking); on an inotify queue
        overflow RESCAN is called, since events were lost."""
        names = []
        for event in self.inotify.read(timeout=0):
            if event.mask & flags.Q_OVERFLOW:
                log.warning("inotify queue overflowed; rescanning %s", self.new)
                rescan()
            elif event.name and not event.mask & flags.ISDIR:
                self.stuck.discard(event.name)  # a new file under that name
                names.append(event.name)
        return names

    def path_of(self, name: str) -> str:
        return os.path.join(self.new, name)

    def read(self, name: str, limit: int):
        """(bytes, identity) of new/NAME; identity tells a replaced file from the one read.
        Raises FileNotFoundError when it is gone, safe_open.Refused (an OSError) when it
        is not a regular file with one link (a FIFO or device moved in could block; a
        hard link could name a file its writer cannot read) or is over LIMIT bytes."""
        data, stat = safe_open.read_file(self.path_of(name), limit, single_link=True)
        return data, (stat.st_ino, stat.st_mtime_ns)

    def identity(self, name: str):
        try:
            stat = os.stat(self.path_of(name), follow_symlinks=False)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns)

    def remove(self, name: str) -> None:
        """Take a finished file out of new/. When that is impossible (new/ went
        read-only) it is logged and the file stays: done again after a restart
        (at-least-once), skipped by rescans until then."""
        try:
            os.unlink(self.path_of(name))
        except FileNotFoundError:
            pass
        except OSError as error:
            log.error("%s: cannot remove it from new/ (%s); it stays there and is done "
                      "again after a restart", name, error.strerror or error)
            self.stuck.add(name)

    def fail(self, name: str, reason: str) -> None:
        """Move new/NAME to failed/ (or delete it when that is impossible), logging why."""
        log.warning("%s: %s; moved to failed/", name, reason)
        target = os.path.join(self.failed_dir, name)
        try:
            if self.keep_failed == 0:
                raise OSError("keeping no failed files")
            os.rename(self.path_of(name), target)
            os.utime(target)  # failed/ is pruned by when files failed, not were written
        except FileNotFoundError:
            return
        except OSError as error:
            log.warning("%s: cannot keep it in failed/ (%s); deleting it", name, error)
            self.remove(name)
            return
        self.prune_failed()

    def prune_failed(self) -> None:
        try:
            with os.scandir(self.failed_dir) as entries:
                files = [(entry.stat(follow_symlinks=False).st_mtime_ns, entry.name)
                         for entry in entries if entry.is_file(follow_symlinks=False)]
        except OSError as error:
            log.warning("cannot list %s: %s", self.failed_dir, error)
            return
        if len(files) <= self.keep_failed:
            return
        files.sort()
        for _, name in files[:len(files) - self.keep_failed]:
            try:
                os.unlink(os.path.join(self.failed_dir, name))
            except OSError:
                pass

    def close(self) -> None:
        self.inotify.close()
