"""Pure device-shadow document logic: no I/O, no MQTT, no processes (IOT_CORE.md §2.4).

values  JSON value equality as the shadow service sees it (1 == 1.0, true != 1), depth, nulls in arrays
merge   merge(base, patch): objects merge, arrays and scalars replace, null deletes, empty objects vanish
delta   delta(desired, reported): what desired asks for that reported does not show
meta    per-leaf metadata timestamps: stamp a patch, carry metadata across a merge, pick the delta's
request parse_update / parse_token: validate a request payload with AWS's error codes and texts
"""

from __future__ import annotations

from chariotd.shadow.delta import delta
from chariotd.shadow.merge import merge
from chariotd.shadow.request import ShadowError, UpdateRequest, parse_token, parse_update
from chariotd.shadow.values import values_equal

__all__ = ["delta", "merge", "values_equal", "ShadowError", "UpdateRequest", "parse_update",
           "parse_token"]
