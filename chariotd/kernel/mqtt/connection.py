"""One connection's state machine, shared by the link and fleet provisioning: the
state (states.py) with every transition checked, the failures in a row, the backoff
with its minimum between CONNECTs, and the one deadline the broker owes in a state.

An illegal transition is a bug in the role. In production it is logged as an error
and made anyway (the role goes on as it did before the check existed: a link that
stopped reconnecting would be worse than one in an odd state); with `strict` set, as
the test suite sets it (tests/conftest.py), it raises `IllegalTransition`.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Dict, Sequence

from chariotd.kernel.backoff import Backoff, Failures
from chariotd.kernel.mqtt.states import UP, WAITING

log = logging.getLogger(__name__)

# Charged failures in a row tolerated; one more gives up on the certificate.
MAX_FAILURES = 5


class IllegalTransition(RuntimeError):
    """A state followed one that it may not follow (states.py)."""


class Connection:
    strict = False  # raise on an illegal transition (the test suite), else log it

    def __init__(self, name: str, transitions: Dict[str, Sequence[str]], initial: str,
                 loop, clock: Callable[[], float] = time.monotonic,
                 backoff: Backoff = Backoff(), max_failures: int = MAX_FAILURES):
        self.name = name  # for the log line of an illegal transition
        self.transitions = transitions
        self.loop = loop
        self.clock = clock
        self.backoff = backoff
        self.max_failures = max_failures
        self.state = initial
        self.since = clock()  # when the state was entered
        self.failures = Failures()
        self.last_connect = -backoff.min_interval  # when the last CONNECT was made
        self.deadline = None  # the timer of what the broker owes in this state
        self.retry = None  # the timer of the next attempt, while WAITING
        self._entered = 0  # transitions so far: a deadline belongs to one of them

    # -- the state -----------------------------------------------------------------------
    def enter(self, state: str) -> None:
        """Move to STATE; what the broker owed in the old state is no longer awaited,
        and UP clears the failures (the connection works)."""
        if state not in self.transitions.get(self.state, ()):
            message = f"{self.name}: illegal transition {self.state} -> {state}"
            if self.strict:
                raise IllegalTransition(message)
            log.error("%s", message)
        self.cancel_deadline()
        self.cancel_retry()
        self.state = state
        self.since = self.clock()
        self._entered += 1
        if state == UP:
            self.failures.clear()

    def cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def cancel_retry(self) -> None:
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None

    # -- deadlines ------------------------------------------------------------------------
    def expect(self, what: str, seconds: float, expired: Callable[[str], None]) -> None:
        """The broker owes WHAT within SECONDS in the current state; past that,
        EXPIRED(reason) (not when the state has changed meanwhile)."""
        self.cancel_deadline()
        entered = self._entered

        def fire() -> None:
            self.deadline = None
            if self._entered == entered:
                expired(f"no {what} within {seconds:g} s")

        self.deadline = self.loop.call_later(seconds, fire)

    # -- failures and backoff -------------------------------------------------------------
    def connecting(self) -> None:
        """An attempt starts now: the next one comes at least `min_interval` later."""
        self.last_connect = self.clock()

    def fail(self, charge: bool = True) -> bool:
        """One more failure in a row (CHARGE: against the certificate); True when the
        charged ones are past `max_failures`: time to give up on the certificate."""
        self.failures.add(charge)
        return self.failures.charged > self.max_failures

    def retry_delay(self, after_failure: bool = True) -> float:
        """Seconds before the next attempt: the backoff of the failures in a row (the
        first retry's after a working connection dropped), and at least `min_interval`
        after the last CONNECT."""
        attempt = max(0, self.failures.total - 1) if after_failure else 0
        return max(self.backoff.delay(attempt),
                   self.last_connect + self.backoff.min_interval - self.clock())

    def wait(self, seconds: float, then: Callable[[], None]) -> None:
        """Enter WAITING; THEN after SECONDS."""
        self.enter(WAITING)
        self.retry_after(seconds, then)

    def retry_after(self, seconds: float, then: Callable[[], None]) -> None:
        """While WAITING: THEN after SECONDS (forgotten when the state changes)."""
        self.cancel_retry()
        self.retry = self.loop.call_later(seconds, then)
