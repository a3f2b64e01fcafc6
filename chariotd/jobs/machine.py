"""The jobs state machine of one thing (pure: events in, actions out).

    IDLE --start-next sent--> STARTING --execution--> RUNNING --last step--> REPORTING
      ^                          |  \\--bad document--> REJECTING --accepted----|
      |                          \\--nothing pending--> IDLE                    |
      +---------------------------- final update accepted <--------------------+
    RUNNING --the execution is gone (notify-next, describe, a rejected update)-->
    CANCELING --handler exited (no update sent)--> IDLE

One request is in flight at a time, matched by its clientToken; a reply that is not
for it is stale and ignored. What to send next is decided in one place (`_pump`) from
the state: the final update (REPORTING, REJECTING), a describe (to check that the
running execution is still ours, or to learn its version), the latest progress (at most
one a second), or start-next. After every (re)connect: start-next when idle, the
pending update otherwise, a describe while running.

Rejections (§7.6): VersionMismatch: the version from the rejection's executionState,
else a describe, then the same update again. InvalidStateTransition,
TerminalStateReached, ResourceNotFound: the execution is gone: the record is dropped (a
running handler is stopped, no update sent). RequestThrottled, InternalError, or no
reply within REPLY_TIMEOUT: the same request again after a backoff from 1 s doubling to
60 s. InvalidRequest for a final update: sent once more with only its reason; then
dropped, logged.

Actions are records the role carries out in order; `Wake(at)` asks for `tick(now)` at
that time (the role keeps one timer per thing).
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from typing import List, Optional

from chariotd.jobs import wire
from chariotd.jobs.details import (IN_PROGRESS, REJECTED, SUCCEEDED, HandlerResult,
                                   Outcome, StepResult, limited, progress_outcome,
                                   step_outcome)
from chariotd.jobs.document import JobDocument, Rejected as DocumentRejected, Step, parse
from chariotd.jobs.state import Record

log = logging.getLogger(__name__)

# States (the machine's only ones).
IDLE = "idle"
STARTING = "starting"
RUNNING = "running"
REJECTING = "rejecting"
REPORTING = "reporting"
CANCELING = "canceling"

REPLY_TIMEOUT = 30.0
BACKOFF_FIRST = 1.0
BACKOFF_CAP = 60.0
PROGRESS_SPACING = 1.0


# ------------------------------------------------------------------ actions

@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes


@dataclass(frozen=True)
class WriteRecord:
    record: Record


@dataclass(frozen=True)
class RemoveRecord:
    pass


@dataclass(frozen=True)
class StartStep:
    """Prepare the work directory (at step 0: with RAW_DOCUMENT), then run STEP."""

    job_id: str
    execution_number: int
    index: int
    step: Step
    timeout: float
    raw_document: object


@dataclass(frozen=True)
class StopHandler:
    pass


@dataclass(frozen=True)
class Wake:
    at: float


# ------------------------------------------------------------------ the machine

@dataclass
class _Running:
    job_id: str
    execution_number: int
    version: int
    document: Optional[JobDocument] = None
    raw_document: object = None
    step: int = 0
    deadline: Optional[float] = None  # the cloud's in-progress timer, on our clock

    def record(self) -> Record:
        return Record(self.job_id, self.execution_number, self.version, self.step)


@dataclass
class _Request:
    kind: str  # wire.START_NEXT, wire.UPDATE or wire.DESCRIBE
    token: str
    sent_at: float
    final: bool = False


class ThingJobs:
    def __init__(self, thing: str, job_timeout: float, token_prefix: Optional[str] = None):
        self.thing = thing
        self.job_timeout = job_timeout
        self.state = IDLE
        self.connected = False
        self.current: Optional[_Running] = None
        self.outcome: Optional[Outcome] = None  # the final update (REPORTING, REJECTING)
        self.minimal_sent = False  # the final update was sent with only its reason
        self.progress: Optional[Outcome] = None  # latest progress not yet sent
        self.progress_sent: Optional[Outcome] = None
        self.progress_at = -1e9
        self.need_describe = False
        self.want_start = True
        self.inflight: Optional[_Request] = None
        self.failures = 0
        self.retry_at = 0.0
        self._tokens = itertools.count(1)
        self._token_prefix = token_prefix or os.urandom(4).hex()

    # -- transitions -----------------------------------------------------------------------
    def _enter(self, new: str, *allowed_from: str) -> None:
        if self.state not in allowed_from:
            raise AssertionError(f"{self.thing}: jobs state {self.state} -> {new}")
        log.debug("%s: jobs %s -> %s", self.thing, self.state, new)
        self.state = new

    def _to_idle(self, actions: List[object]) -> None:
        self._enter(IDLE, STARTING, REPORTING, REJECTING, CANCELING)
        self.current = self.outcome = self.progress = self.progress_sent = None
        self.minimal_sent = self.need_describe = False
        self.want_start = True
        actions.append(RemoveRecord())

    # -- events ----------------------------------------------------------------------------
    def link_up(self, now: float) -> List[object]:
        self.connected = True
        self._lost()
        self.failures, self.retry_at = 0, 0.0
        if self.state == IDLE:
            self.want_start = True
        elif self.state == RUNNING:
            self.need_describe = True
        return self._pump(now)

    def link_down(self) -> List[object]:
        self.connected = False
        self._lost()
        return []

    def publish_failed(self, now: float) -> List[object]:
        """The link could not publish the request in flight: sent again after a backoff
        (or after the next connect)."""
        if self.inflight is not None:
            self._lost()
            self._back_off(now)
        return self._pump(now)

    def recovered(self, record: Record, now: float) -> List[object]:
        """At start, a record found by ExecutionState.recover (phase reporting)."""
        self._enter(REPORTING, IDLE)
        self.current = _Running(record.job_id, record.execution_number, record.version,
                                step=record.step)
        self.outcome = record.outcome
        return self._pump(now)

    def message(self, event: wire.Event, now: float) -> List[object]:
        if isinstance(event, wire.NotifyNext):
            return self._notify_next(event.execution, now)
        if self.inflight is None or event.token != self.inflight.token \
                or event.api != self.inflight.kind:
            log.debug("%s: stale jobs reply on %s ignored", self.thing, event.api)
            return []
        request, self.inflight = self.inflight, None
        if isinstance(event, wire.Rejected):
            return self._rejected(event, request, now)
        self.failures = 0
        if event.api == wire.START_NEXT:
            return self._started(event.execution, now)
        if event.api == wire.DESCRIBE:
            return self._described(event.execution, now)
        return self._updated(request, now)

    def step_exited(self, result: StepResult, handler_result: Optional[HandlerResult],
                    now: float) -> List[object]:
        actions: List[object] = []
        if self.state == CANCELING:
            log.info("%s: job %s: handler stopped; the execution is gone, no update sent",
                     self.thing, self.current.job_id)
            self._to_idle(actions)
            return actions + self._pump(now)
        if self.state != RUNNING:
            return []
        current = self.current
        steps = current.document.all_steps
        step = steps[current.step]
        notes: List[str] = []
        outcome = step_outcome(result, current.document.include_stdout, handler_result,
                               step.name if len(steps) > 1 else None, notes)
        for note in notes:
            log.warning("%s: job %s: %s", self.thing, current.job_id, note)
        finished = handler_result is not None and handler_result.final
        passed = outcome.status == SUCCEEDED or (
            step.ignore_failure and not finished and not result.timed_out)
        if passed and not finished:
            outcome = Outcome(SUCCEEDED, outcome.details)
            if current.step + 1 < len(steps):
                log.info("%s: job %s: step %s done (%s); next step", self.thing,
                         current.job_id, step.name, outcome.details.get("reason", ""))
                current.step += 1
                self.progress = Outcome(IN_PROGRESS,
                                        limited({"step": steps[current.step].name}))
                actions.append(WriteRecord(current.record()))
                actions.append(self._start_step(now))
                return actions + self._pump(now)
        log.info("%s: job %s: %s (%s)", self.thing, current.job_id, outcome.status,
                 outcome.details.get("reason", ""))
        self._enter(REPORTING, RUNNING)
        self.outcome, self.progress = outcome, None
        actions.append(WriteRecord(current.record().reporting(outcome)))
        return actions + self._pump(now)

    def progress_seen(self, handler_result: HandlerResult, now: float) -> List[object]:
        """What $JOB_RESULT_FILE holds while the handler runs (IN_PROGRESS only)."""
        if self.state != RUNNING or handler_result.status != IN_PROGRESS:
            return []
        outcome = progress_outcome(handler_result)
        if outcome != (self.progress or self.progress_sent):
            self.progress = outcome
        return self._pump(now)

    def tick(self, now: float) -> List[object]:
        if self.inflight is not None and now >= self.inflight.sent_at + REPLY_TIMEOUT:
            log.warning("%s: no reply to jobs %s within %g s; sending it again",
                        self.thing, self.inflight.kind, REPLY_TIMEOUT)
            self._lost()
            self._back_off(now)
        return self._pump(now)

    # -- replies ---------------------------------------------------------------------------
    def _notify_next(self, execution: Optional[wire.Execution], now: float) -> List[object]:
        if self.state == IDLE and execution is not None:
            self.want_start = True
        elif self.state == RUNNING:
            current = self.current
            if execution is None or (execution.job_id, execution.execution_number) != (
                    current.job_id, current.execution_number):
                self.need_describe = True  # §7.5: ask before believing it gone
        return self._pump(now)

    def _started(self, execution: Optional[wire.Execution], now: float) -> List[object]:
        self._enter(IDLE, STARTING)
        self.want_start = False
        if execution is None:
            log.debug("%s: no job execution pending", self.thing)
            return []
        self.current = _Running(execution.job_id, execution.execution_number,
                                execution.version, raw_document=execution.document)
        if execution.seconds_left is not None:
            self.current.deadline = now + execution.seconds_left
        try:
            self.current.document = parse(execution.document)
        except DocumentRejected as error:
            log.warning("%s: job %s rejected: %s", self.thing, execution.job_id, error)
            self._enter(REJECTING, IDLE)
            self.outcome = Outcome(REJECTED, limited({"reason": str(error)}))
            return self._pump(now)
        if self.current.document.ignored:
            log.debug("%s: job %s: fields ignored: %s", self.thing, execution.job_id,
                      ", ".join(self.current.document.ignored))
        self._enter(RUNNING, IDLE)
        log.info("%s: job %s (execution %d) starts", self.thing, execution.job_id,
                 execution.execution_number)
        return [WriteRecord(self.current.record()), self._start_step(now)] + self._pump(now)

    def _start_step(self, now: float) -> StartStep:
        current = self.current
        timeout = self.job_timeout
        if current.deadline is not None:
            timeout = max(0.0, min(timeout, current.deadline - now))
        return StartStep(current.job_id, current.execution_number, current.step,
                         current.document.all_steps[current.step], timeout,
                         current.raw_document)

    def _described(self, execution: Optional[wire.Execution], now: float) -> List[object]:
        self.need_describe = False
        if execution is None or execution.status in wire.TERMINAL or \
                execution.execution_number != self.current.execution_number:
            return self._gone("the execution is no longer pending", now)
        self.current.version = execution.version
        return self._pump(now)

    def _updated(self, request: _Request, now: float) -> List[object]:
        self.current.version += 1
        if not request.final:
            return self._pump(now)
        log.info("%s: job %s: %s accepted", self.thing, self.current.job_id,
                 self.outcome.status)
        actions: List[object] = []
        self._to_idle(actions)
        return actions + self._pump(now)

    def _rejected(self, event: wire.Rejected, request: _Request, now: float) -> List[object]:
        what = f"jobs {event.api} rejected: {event.code} {event.message}".rstrip()
        if event.code in wire.RETRYABLE:
            log.info("%s: %s; retrying", self.thing, what)
            self._lost()
            self._back_off(now)
            return self._pump(now)
        if self.state == STARTING:
            log.warning("%s: %s", self.thing, what)
            self.state, self.want_start = IDLE, True
            self._back_off(now)
            return self._pump(now)
        if event.code == wire.VERSION_MISMATCH and event.api == wire.UPDATE:
            if event.state_status in wire.TERMINAL:
                return self._gone(what, now)
            if event.state_version is not None:
                self.current.version = event.state_version
            else:
                self.need_describe = True
            log.info("%s: %s; sending again with version %s", self.thing, what,
                     event.state_version if event.state_version is not None else "(asked)")
            return self._pump(now)
        if event.code in wire.GONE:
            return self._gone(what, now)
        if request.final and not self.minimal_sent:
            log.warning("%s: %s; sending it once more with only its reason", self.thing, what)
            self.minimal_sent = True
            reason = self.outcome.details.get("reason", self.outcome.status)
            self.outcome = Outcome(self.outcome.status, limited({"reason": reason}))
            return self._pump(now)
        log.error("%s: %s; given up", self.thing, what)
        self._back_off(now)  # whatever comes next, not in a tight loop with the service
        if request.kind == wire.DESCRIBE:
            self.need_describe = False
        if request.final:
            actions: List[object] = []
            self._to_idle(actions)
            return actions + self._pump(now)
        self.progress = None  # a progress update the service refuses is dropped
        return self._pump(now)

    def _gone(self, why: str, now: float) -> List[object]:
        actions: List[object] = []
        if self.state == RUNNING:
            log.warning("%s: job %s: %s; stopping its handler, no update will be sent",
                        self.thing, self.current.job_id, why)
            self._enter(CANCELING, RUNNING)
            return [StopHandler()]
        if self.state in (REPORTING, REJECTING):
            log.warning("%s: job %s: %s; its local record is dropped", self.thing,
                        self.current.job_id, why)
            self._to_idle(actions)
        return actions + self._pump(now)

    def _back_off(self, now: float) -> None:
        delay = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** min(self.failures, 16))
        self.failures += 1
        self.retry_at = now + delay

    def _lost(self) -> None:
        """The request in flight will get no reply (no reply in time, a retryable
        rejection, the link went down): it is sent again by _pump."""
        self.inflight = None
        if self.state == STARTING:
            self.state, self.want_start = IDLE, True

    def _request(self, kind: str, now: float, final: bool = False) -> str:
        token = f"{self._token_prefix}-{next(self._tokens)}"
        self.inflight = _Request(kind, token, now, final)
        return token

    # -- sending -----------------------------------------------------------------------------
    def _pump(self, now: float) -> List[object]:
        """Send the next request if one is due and none is in flight; Wake when later."""
        if not self.connected:
            return []
        if self.inflight is not None:
            return [Wake(self.inflight.sent_at + REPLY_TIMEOUT)]
        if now < self.retry_at:
            return [Wake(self.retry_at)]
        current = self.current
        if self.state in (REPORTING, REJECTING, RUNNING) and self.need_describe:
            token = self._request(wire.DESCRIBE, now)
            message = wire.describe(self.thing, current.job_id, token,
                                    current.execution_number)
        elif self.state in (REPORTING, REJECTING):
            token = self._request(wire.UPDATE, now, final=True)
            message = wire.update(self.thing, current.job_id, token, self.outcome.status,
                                  self.outcome.details, current.version,
                                  current.execution_number)
        elif self.state == RUNNING and self.progress is not None:
            if now < self.progress_at + PROGRESS_SPACING:
                return [Wake(self.progress_at + PROGRESS_SPACING)]
            token = self._request(wire.UPDATE, now)
            message = wire.update(self.thing, current.job_id, token, IN_PROGRESS,
                                  self.progress.details, current.version,
                                  current.execution_number,
                                  wire.step_minutes(self.job_timeout))
            self.progress_sent, self.progress, self.progress_at = self.progress, None, now
        elif self.state == IDLE and self.want_start:
            self._enter(STARTING, IDLE)
            token = self._request(wire.START_NEXT, now)
            message = wire.start_next(self.thing, token, wire.step_minutes(self.job_timeout))
        else:
            return []
        return [Publish(*message), Wake(now + REPLY_TIMEOUT)]


__all__ = ["ThingJobs", "Publish", "WriteRecord", "RemoveRecord", "StartStep",
           "StopHandler", "Wake", "IDLE", "STARTING", "RUNNING", "REJECTING", "REPORTING",
           "CANCELING"]
