"""Waits between attempts: exponential backoff, capped (pure).

Attempt N (0 for the first retry) has the ceiling BASE * 2**N, at most CAP. A
reconnect waits a uniform time in [0, ceiling) (full jitter: a fleet that lost the
broker together does not come back together), and never less than MIN_INTERVAL after
the previous CONNECT (AWS accepts one CONNECT per second per client id). With BASE =
0.5 s the first retries after a short outage come about once a second, as fast as AWS
allows, and a long outage backs off to 2 minutes. A pause that must last (the
letterhead pause of a messages directory) waits the ceiling itself.

The roles take a `Backoff` in their constructors; `from_environment` is the test
suite's seam (CHARIOTD_BACKOFF_BASE=S sets BASE and MIN_INTERVAL to S, at most 1 s),
read when a role starts, never at import. Devices never set it.
"""

from __future__ import annotations

import random
from typing import Callable, Mapping, NamedTuple


def delay(attempt: int, base: float = 0.5, cap: float = 120.0,
          uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before attempt number ATTEMPT (0 for the first retry): a uniform
    draw below its ceiling."""
    return uniform(0.0, ceiling(attempt, base, cap))


def ceiling(attempt: int, base: float, cap: float) -> float:
    """The longest wait before attempt number ATTEMPT: BASE * 2**ATTEMPT, at most CAP."""
    return min(cap, base * (2 ** min(attempt, 32)))


class Backoff(NamedTuple):
    base: float = 0.5
    cap: float = 120.0
    min_interval: float = 1.0  # between two CONNECTs (AWS: one per second per client id)

    def delay(self, attempt: int) -> float:
        """A jittered wait before attempt number ATTEMPT."""
        return delay(attempt, base=self.base, cap=self.cap)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> "Backoff":
        """The defaults, or the test seam's CHARIOTD_BACKOFF_BASE (a malformed or
        non-positive value is ignored)."""
        try:
            base = float(environ.get("CHARIOTD_BACKOFF_BASE") or "nan")
        except ValueError:
            base = float("nan")
        if not 0 < base <= 60:  # also false for nan
            return cls()
        return cls(base=base, min_interval=min(1.0, base))


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
