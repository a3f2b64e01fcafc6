"""Reconnect delays: exponential backoff with full jitter, capped (pure).

Retry N (0 for the first) waits a uniform time in [0, BASE * 2**N), at most CAP, and
never less than MIN_INTERVAL after the previous attempt (AWS accepts one CONNECT per
second per client id). With BASE = 0.5 s the first retries after a short outage come
about once a second, as fast as AWS allows, and a long outage backs off to 2 minutes.
"""

from __future__ import annotations

import os
import random
from typing import Callable

# CHARIOTD_BACKOFF_BASE shortens the delays for the test suite; devices never set it.
_SEAM = os.environ.get("CHARIOTD_BACKOFF_BASE")
BASE = float(_SEAM) if _SEAM else 0.5
MIN_INTERVAL = min(1.0, float(_SEAM)) if _SEAM else 1.0
CAP = 120.0


def delay(attempt: int, base: float = BASE, cap: float = CAP,
          uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before attempt number ATTEMPT (0 for the first retry)."""
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return uniform(0.0, ceiling)
