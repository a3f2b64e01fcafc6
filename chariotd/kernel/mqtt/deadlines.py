"""How long chariotd waits for the broker (pure). Every wait on the broker has one:

    connack  CONNECT sent, no CONNACK                 -> connection failure, reconnect
    suback   CONNACK in, a SUBACK still missing       -> connection failure, reconnect
    puback   QoS 1 publishes out, no PUBACK for this  -> connection dropped; what was
             long (progress, not age: a slow uplink      in flight is published again
             still acknowledges something)               after the reconnect
    request  a shadow get/update, no accepted/rejected -> asked again, counted as a
                                                          failure (services/shadow_sync)

paho never resends an unacknowledged QoS 1 publish on an open connection (MQTT 3.1.1
allows it only after a reconnect) and AWS answers within milliseconds, so a missing
acknowledgement means a broken connection or a broker that swallows requests. The
PUBACK deadline is above the time a 128 KB message takes on a slow cellular uplink
(about 20-50 s at NB-IoT rates) and below --message-jam-timeout's default (300 s), so
the link recovers before a watcher gives up on the tree.

The roles take a `Deadlines` in their constructors. `from_environment` is the test
suite's seam (CHARIOTD_DEADLINES="suback=0.5,puback=2"; the older
CHARIOTD_REQUEST_TIMEOUT=S sets `request`); devices never set them.
"""

from __future__ import annotations

import logging
from typing import Mapping, NamedTuple

log = logging.getLogger(__name__)


class Deadlines(NamedTuple):
    connack: float = 20.0
    suback: float = 20.0
    puback: float = 120.0
    request: float = 10.0


def from_environment(environ: Mapping[str, str]) -> Deadlines:
    """Deadlines with the test seam's values applied; a malformed entry is logged and
    left at its default."""
    values = {}
    entries = environ.get("CHARIOTD_DEADLINES", "").split(",")
    if environ.get("CHARIOTD_REQUEST_TIMEOUT"):
        entries.append(f"request={environ['CHARIOTD_REQUEST_TIMEOUT']}")
    for entry in filter(None, (e.strip() for e in entries)):
        name, _, value = entry.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if name not in Deadlines._fields or not 0 < seconds < 86400:
            log.warning("ignored the deadline %r", entry)
            continue
        values[name] = seconds
    return Deadlines(**values)
