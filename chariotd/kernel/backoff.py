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


class Failures:
    """One connection's failures in a row. Every failure lengthens the backoff
    (`total`); only the `charged` ones, which the certificate may have caused, count
    toward giving up on it (rotating `preferred`). A CA problem is not charged."""

    def __init__(self) -> None:
        self.total = 0
        self.charged = 0

    def add(self, charge: bool = True) -> None:
        self.total += 1
        self.charged += bool(charge)

    def clear(self) -> None:
        self.total = self.charged = 0

    def delay(self) -> float:
        """Seconds to wait before the next attempt."""
        return delay(max(0, self.total - 1))
