"""Notify commands: `/bin/sh -c NOTIFYCMD` in `/`, killed after the service's timeout.
Several may run at once; none blocks the applier's loop. Failures and anything the
command writes on stderr are logged.

A change that rewrites an outfile leaves a marker beside it, `.OUTFILE.notify-pending`,
made before the outfile is replaced (so the outfile's directory fsync makes it durable
too) and removed when the last notify command of that service has finished. A marker
found at start means chariotd was stopped between the write and the end of the
command: the service is notified again (`Service.apply`), so a change is never left
written but unannounced.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, Optional

from chariotd.services.definitions import ServiceDefinition
from chariotd.spawn import Result, Spawner, shown

log = logging.getLogger(__name__)


def marker_path(outfile: str) -> str:
    head, tail = os.path.split(outfile)
    return os.path.join(head, f".{tail}.notify-pending")


def mark_pending(outfile: str) -> None:
    """Leave the marker beside OUTFILE (never through a symlink someone put there)."""
    try:
        fd = os.open(marker_path(outfile),
                     os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        log.warning("cannot mark %s as waiting for its notify command: %s", outfile,
                    error.strerror or error)
        return
    os.close(fd)


def is_pending(outfile: str) -> bool:
    return os.path.lexists(marker_path(outfile))


def clear_pending(outfile: str) -> None:
    try:
        os.unlink(marker_path(outfile))
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warning("cannot remove %s: %s", marker_path(outfile), error.strerror or error)


class Notifier:
    def __init__(self, spawner: Spawner):
        self.spawner = spawner
        self.running: Dict[str, int] = {}  # notify commands under way, per service

    def __call__(self, definition: ServiceDefinition, config: Any,
                 outfile: Optional[str] = None) -> None:
        """Run DEFINITION's notify command; OUTFILE's marker is removed once the last
        command of the service has finished."""
        # An ephemeral service's data is written nowhere: its command reads it on stdin.
        stdin = json.dumps(config).encode() if definition.ephemeraldata and config else b""
        log.info("service %s: running its notify command", definition.key)

        key = definition.key
        self.running[key] = self.running.get(key, 0) + 1

        def done(result: Result) -> None:
            self.running[key] -= 1
            if outfile is not None and not self.running[key]:
                clear_pending(outfile)
            if not result.ok:
                log.error("service %s: notify command %s%s", definition.key,
                          result.describe(),
                          f": {shown(result.stderr)}" if result.stderr.strip() else "")
            elif result.stderr.strip():
                log.warning("service %s: notify command said: %s", definition.key,
                            shown(result.stderr))

        # Started once this pass of the loop is over, so the reported update that the
        # same change produced goes out first.
        self.spawner.loop.call_later(0, lambda: self.spawner.run(
            ["/bin/sh", "-c", definition.notifycmd], done, timeout=definition.timeout,
            stdin=stdin))
