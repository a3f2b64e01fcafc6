"""Notify commands: `/bin/sh -c NOTIFYCMD` in `/`, killed after the service's timeout.
Several may run at once; none blocks the applier's loop. Failures and anything the
command writes on stderr are logged."""

from __future__ import annotations

import json
import logging
from typing import Any

from chariotd.services.definitions import ServiceDefinition
from chariotd.spawn import Result, Spawner, shown

log = logging.getLogger(__name__)

class Notifier:
    def __init__(self, spawner: Spawner):
        self.spawner = spawner

    def __call__(self, definition: ServiceDefinition, config: Any) -> None:
        # An ephemeral service's data is written nowhere: its command reads it on stdin.
        stdin = json.dumps(config).encode() if definition.ephemeraldata and config else b""
        log.info("service %s: running its notify command", definition.key)

        def done(result: Result) -> None:
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
