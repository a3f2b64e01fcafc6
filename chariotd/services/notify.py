"""Notify commands: `/bin/sh -c NOTIFYCMD` in `/`, killed after the service's timeout.
None blocks the applier's loop. Failures and anything the command writes on stderr are
logged.

Coalesced per service: at most one command of a service runs and one waits. A change
while the command runs makes it run once more when it has finished, however many
changes came meanwhile; that run sees the latest outfile (an ephemeral service's
command gets the latest data on stdin). A flood of changes thus starts at most two
commands per service at a time, not one per change.

A change that rewrites an outfile leaves a marker beside it (chariotd/kernel/pending.py),
removed when the last run the service needs has finished (never while one waits); a
marker found at start makes `Service.apply` notify again, so a change is never left
written but unannounced.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Optional, Tuple

from chariotd.kernel import pending
from chariotd.services.definitions import ServiceDefinition
from chariotd.kernel.spawn import Result, Spawner, shown

log = logging.getLogger(__name__)

Run = Tuple[ServiceDefinition, Any, Optional[str]]  # definition, config, outfile


class Notifier:
    def __init__(self, spawner: Spawner):
        self.spawner = spawner
        # Per service with a command under way or about to start: the run still to start.
        self.busy: Dict[str, Optional[Run]] = {}

    def __call__(self, definition: ServiceDefinition, config: Any,
                 outfile: Optional[str] = None) -> None:
        """Run DEFINITION's notify command, now or after the one under way; OUTFILE's
        marker is removed once the last run the service needs has finished."""
        key = definition.key
        if key in self.busy:
            if self.busy[key] is None:
                log.debug("service %s: its notify command runs again once the one under "
                          "way has finished", key)
            self.busy[key] = (definition, config, outfile)  # the latest wins
            return
        self.busy[key] = (definition, config, outfile)
        # Started once this pass of the loop is over, so the reported update that the
        # same change produced goes out first (and later changes of the pass join it).
        self.spawner.loop.call_later(0, lambda: self._next(key))

    def _next(self, key: str) -> None:
        following, self.busy[key] = self.busy[key], None
        self._start(*following)

    def _start(self, definition: ServiceDefinition, config: Any,
               outfile: Optional[str]) -> None:
        # An ephemeral service's data is written nowhere: its command reads it on stdin.
        stdin = json.dumps(config).encode() if definition.ephemeraldata and config else b""
        log.info("service %s: running its notify command", definition.key)
        self.spawner.run(["/bin/sh", "-c", definition.notifycmd],
                         lambda result: self._done(definition, outfile, result),
                         timeout=definition.timeout, stdin=stdin)

    def _done(self, definition: ServiceDefinition, outfile: Optional[str],
              result: Result) -> None:
        key = definition.key
        if not result.ok:
            log.error("service %s: notify command %s%s", key, result.describe(),
                      f": {shown(result.stderr)}" if result.stderr.strip() else "")
        elif result.stderr.strip():
            log.warning("service %s: notify command said: %s", key, shown(result.stderr))
        if self.busy.get(key) is not None:
            self._next(key)
        else:
            self.busy.pop(key, None)
            if outfile is not None:
                pending.clear(outfile)
