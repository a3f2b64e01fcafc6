"""Reconnect delays: exponential backoff with full jitter, capped (pure)."""

from __future__ import annotations

import os
import random
from typing import Callable

# CHARIOTD_BACKOFF_BASE shortens the delays for the test suite; devices never set it.
BASE = float(os.environ.get("CHARIOTD_BACKOFF_BASE", "1.0"))
CAP = 120.0


def delay(attempt: int, base: float = BASE, cap: float = CAP,
          uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before attempt number ATTEMPT (0 for the first retry)."""
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return uniform(0.0, ceiling)
