"""Notify commands: `/bin/sh -c NOTIFYCMD` in `/`, killed after the service's timeout.
Several may run at once; none blocks the applier's loop. Failures and anything the
command writes on stderr are logged.

A change that rewrites an outfile leaves a marker beside it (chariotd/pending.py),
removed when the last notify command of that service has finished; a marker found at
start makes `Service.apply` notify again, so a change is never left written but
unannounced.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Optional

from chariotd import pending
from chariotd.services.definitions import ServiceDefinition
from chariotd.spawn import Result, Spawner, shown

log = logging.getLogger(__name__)


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
                pending.clear(outfile)
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
