"""When a Device Defender report goes out (pure; times are monotonic seconds).

- The first report of a run is due FIRST_DELAY after the link is first up (AWS's own
  client sends at once; a few seconds let the link subscribe to the replies first), well
  within 15 s of each start once connected.
- Then one every INTERVAL (default and minimum 300 s, AWS's rate: one report per thing
  per 300 s), counted from the last report handed to the link.
- Nothing is built or kept while the link is down: a report that falls due then is not
  queued; the next one, built fresh when the link is back (FIRST_DELAY after it comes
  up, never sooner than INTERVAL after the last), replaces it, and its traffic deltas
  cover the whole time since the last delivered report.
- A report handed to the link counts for the rate even if it is then lost (AWS may
  have received it without our seeing the PUBACK).
"""

from __future__ import annotations

from typing import Optional

MIN_INTERVAL = 300
DEFAULT_INTERVAL = 300
FIRST_DELAY = 5.0
FIRST_DELAY_LIMIT = 15.0


class ReportSchedule:
    def __init__(self, interval: float = DEFAULT_INTERVAL, first_delay: float = FIRST_DELAY,
                 minimum: float = MIN_INTERVAL):
        """MINIMUM is lowered only by the test suite's seam (defender/main.py)."""
        if interval < minimum:
            raise ValueError(f"the Defender interval is at least {minimum} s, not {interval}")
        if not 0 <= first_delay <= FIRST_DELAY_LIMIT:
            raise ValueError(f"the first report comes within {FIRST_DELAY_LIMIT} s of the link")
        self.interval = interval
        self.first_delay = first_delay
        self.link_up = False
        self.last_sent: Optional[float] = None
        self._due: Optional[float] = None

    def link_changed(self, up: bool, now: float) -> None:
        """The link went up or down at NOW."""
        if up and not self.link_up:
            soonest = now + self.first_delay
            if self.last_sent is not None:
                soonest = max(soonest, self.last_sent + self.interval)
            self._due = soonest
        elif not up:
            self._due = None
        self.link_up = up

    def due_at(self) -> Optional[float]:
        """When the next report is due; None while the link is down."""
        return self._due if self.link_up else None

    def is_due(self, now: float) -> bool:
        due = self.due_at()
        return due is not None and now >= due

    def timeout(self, now: float) -> Optional[float]:
        """Seconds until the next report is due (0 if it is), for a poll; None: wait for
        the link."""
        due = self.due_at()
        return None if due is None else max(0.0, due - now)

    def sent(self, now: float) -> None:
        """A report was handed to the link at NOW."""
        self.last_sent = now
        self._due = now + self.interval
