"""Pure device-shadow document logic: no I/O, no MQTT, no processes (IOT_CORE.md §2.4).

values  JSON value equality as the shadow service sees it (1 == 1.0, true != 1), depth, nulls in arrays
merge   merge(base, patch): objects merge, arrays and scalars replace, null deletes, empty objects vanish
patch   the applier's shadow changes: apply, diff, combine, normalise (DELETE handling)

Only what the daemon uses lives here; the simulator's own shadow-service logic (delta,
metadata, request validation) is in chariotd/sim/shadow/.
"""

from __future__ import annotations

from chariotd.shadow.merge import merge
from chariotd.shadow.values import values_equal

__all__ = ["merge", "values_equal"]
