"""The cloud's Jobs service for one thing as pure functions (IOT_CORE.md §7).

A thing's executions are a tuple of ``Execution`` in creation order. Each function takes
that tuple, a request or a cloud-side command and the time (epoch seconds) and returns
the new tuple and the (topic, payload) pairs to publish: the reply, then notify and
notify-next when §7.5 says they fire. No I/O here; the MQTT plumbing is in
jobs_service.py, storage in store.py, the statuses and their moves in job_states.py.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from chariotd.sim.job_states import (CANCELED, DEVICE_MOVES, DEVICE_SETS, IN_PROGRESS, PENDING, QUEUED,
                                     SERVICE_MOVES, TERMINAL, TIMED_OUT, TransitionRefused,
                                     enter)
from chariotd.sim.topics import JOB_ID, NEXT, JobsRequest, jobs_prefix

Response = Tuple[str, dict]
Executions = Tuple["Execution", ...]

MAX_TIMER_MINUTES = 10080           # §7.7: timers 1-10080 minutes
MAX_DOCUMENT_CHARS = 32768          # §7.8
MAX_TOKEN_CHARS = 64                # [?] no Jobs limit documented; the shadow's 64
STATUS_KEY_MAX, STATUS_VALUE_MAX = 128, 1024
_STATUS_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789:_-")

# Error codes (§7.6): strings, no number.
INVALID_TOPIC = "InvalidTopic"
INVALID_JSON = "InvalidJson"
INVALID_REQUEST = "InvalidRequest"
INVALID_STATE_TRANSITION = "InvalidStateTransition"
RESOURCE_NOT_FOUND = "ResourceNotFound"
VERSION_MISMATCH = "VersionMismatch"
INTERNAL_ERROR = "InternalError"
REQUEST_THROTTLED = "RequestThrottled"
TERMINAL_STATE_REACHED = "TerminalStateReached"
ERROR_CODES = (INVALID_TOPIC, INVALID_JSON, INVALID_REQUEST, INVALID_STATE_TRANSITION,
               RESOURCE_NOT_FOUND, VERSION_MISMATCH, INTERNAL_ERROR, REQUEST_THROTTLED,
               TERMINAL_STATE_REACHED)
# Cloud-side (control plane) only: CreateJob with a job ID already in use.
RESOURCE_ALREADY_EXISTS = "ResourceAlreadyExists"


@dataclass(frozen=True)
class JobsOptions:
    """Switches for what §7 leaves open ([?])."""

    # §7.5: also send notify when a pending execution changes status (QUEUED->IN_PROGRESS);
    # AWS's worked example and the 2025 capture show none.
    notify_on_status_change: bool = False
    # §7.6: describe of a terminal execution answers TerminalStateReached (False: the
    # execution with its terminal status).
    describe_terminal_error: bool = True
    max_listed: int = 10            # §7.8: pending executions in notify and GetPending


class JobsError(Exception):
    """A rejection: CODE (one of ERROR_CODES), MESSAGE, and the execution's state for
    InvalidStateTransition and VersionMismatch."""

    def __init__(self, code: str, message: str, execution: Optional["Execution"] = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.execution = code, message, execution


@dataclass(frozen=True)
class Execution:
    """One job execution on one thing. Times are epoch seconds; deadlines None when no
    timer runs. status_details None when never set (then left out of replies)."""

    job_id: str
    execution_number: int
    status: str
    queued_at: int
    last_updated_at: int
    version: int
    document: dict
    status_details: Optional[Dict[str, str]] = None
    started_at: Optional[int] = None
    in_progress_minutes: Optional[int] = None     # the job's in-progress timer
    in_progress_deadline: Optional[int] = None
    step_deadline: Optional[int] = None

    @property
    def key(self) -> Tuple[str, int]:
        return self.job_id, self.execution_number

    @property
    def deadline(self) -> Optional[int]:
        """When it times out: the earlier timer (a step never outlasts the in-progress one)."""
        timers = [t for t in (self.in_progress_deadline, self.step_deadline) if t is not None]
        return min(timers) if timers else None

    def summary(self) -> dict:
        """JobExecutionSummary (§7.2): no status, no document."""
        doc = {"jobId": self.job_id, "queuedAt": self.queued_at}
        if self.started_at is not None:
            doc["startedAt"] = self.started_at
        doc.update(lastUpdatedAt=self.last_updated_at, versionNumber=self.version,
                   executionNumber=self.execution_number)
        return doc

    def state(self) -> dict:
        """JobExecutionState (§7.2)."""
        doc: dict = {"status": self.status}
        if self.status_details is not None:
            doc["statusDetails"] = dict(self.status_details)
        doc["versionNumber"] = self.version
        return doc

    def wire(self, now: int, document: bool = True) -> dict:
        """JobExecution (§7.2) as replies and notify-next carry it; no thingName (the
        capture has none)."""
        doc = {"jobId": self.job_id, "status": self.status}
        if self.status_details is not None:
            doc["statusDetails"] = dict(self.status_details)
        doc["queuedAt"] = self.queued_at
        if self.started_at is not None:
            doc["startedAt"] = self.started_at
        doc["lastUpdatedAt"] = self.last_updated_at
        if self.deadline is not None and self.status not in TERMINAL:
            doc["approximateSecondsBeforeTimedOut"] = max(0, self.deadline - now)
        doc.update(versionNumber=self.version, executionNumber=self.execution_number)
        if document:
            doc["jobDocument"] = self.document
        return doc

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> "Execution":
        return cls(**{f.name: doc[f.name] for f in dataclasses.fields(cls) if f.name in doc})


# -- ordering and events (§7.5)

def pending(executions: Sequence[Execution]) -> List[Execution]:
    """IN_PROGRESS first, then QUEUED, each in creation order."""
    return [e for status in PENDING for e in executions if e.status == status]


def head(executions: Sequence[Execution]) -> Optional[Execution]:
    listed = pending(executions)
    return listed[0] if listed else None


def notify_doc(executions: Sequence[Execution], now: int, options: JobsOptions) -> dict:
    jobs: Dict[str, list] = {}
    for execution in pending(executions)[:options.max_listed]:
        jobs.setdefault(execution.status, []).append(execution.summary())
    return {"timestamp": now, "jobs": jobs}


def notify_next_doc(executions: Sequence[Execution], now: int) -> dict:
    first = head(executions)
    return {"timestamp": now} if first is None else {"timestamp": now,
                                                     "execution": first.wire(now)}


def events(thing: str, before: Sequence[Execution], after: Sequence[Execution], now: int,
           options: JobsOptions) -> List[Response]:
    """notify when the set of pending executions changed (or, with the switch, a pending
    status); notify-next when the head changed (§7.5's table)."""
    def listed(executions):
        return {(e.key, e.status if options.notify_on_status_change else None)
                for e in pending(executions)}

    def head_key(executions):
        first = head(executions)
        return first.key if first else None

    out: List[Response] = []
    if listed(before) != listed(after):
        out.append((f"{jobs_prefix(thing)}/notify", notify_doc(after, now, options)))
    if head_key(before) != head_key(after):
        out.append((f"{jobs_prefix(thing)}/notify-next", notify_next_doc(after, now)))
    return out


# -- request fields

def _object(payload: bytes) -> dict:
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise JobsError(INVALID_JSON, "The request payload is not valid UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise JobsError(INVALID_REQUEST, "The request payload must be a JSON object")
    return doc


def _token(doc: dict) -> Optional[str]:
    token = doc.get("clientToken")
    if token is None:
        return None
    if not isinstance(token, str) or not 1 <= len(token) <= MAX_TOKEN_CHARS:
        raise JobsError(INVALID_REQUEST, f"clientToken must be a string of 1 to "
                                         f"{MAX_TOKEN_CHARS} characters")
    return token


def _integer(doc: dict, name: str, low: int, high: Optional[int] = None,
             also: Tuple[int, ...] = (), strings: bool = False) -> Optional[int]:
    value = doc.get(name)
    if value is None:
        return None
    if strings and isinstance(value, str) and value.isascii() and value.isdigit() \
            and len(value) <= 19:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not (
            value in also or low <= value and (high is None or value <= high)):
        limits = f"{low} to {high}" if high is not None else f"at least {low}"
        raise JobsError(INVALID_REQUEST, f"{name} must be an integer, {limits}"
                        + (f" or {also[0]}" if also else ""))
    return value


def _boolean(doc: dict, name: str, default: bool) -> bool:
    value = doc.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise JobsError(INVALID_REQUEST, f"{name} must be a boolean")
    return value


def utf16_length(text: str) -> int:
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def status_details_error(details) -> Optional[str]:
    """Why DETAILS is not a valid statusDetails map (§7.2, §7.8), or None."""
    if not isinstance(details, dict):
        return "statusDetails must be an object of strings"
    for key, value in details.items():
        if not 1 <= len(key) <= STATUS_KEY_MAX or not set(key) <= _STATUS_KEY_CHARS:
            return (f"statusDetails key {key[:STATUS_KEY_MAX]!r} must be 1 to "
                    f"{STATUS_KEY_MAX} characters of [a-zA-Z0-9:_-]")
        if not isinstance(value, str):
            return f"statusDetails value of {key!r} must be a string"
        if not 1 <= utf16_length(value) <= STATUS_VALUE_MAX:
            return f"statusDetails value of {key!r} must be 1 to {STATUS_VALUE_MAX} characters"
        if any(unicodedata.category(c).startswith("C") for c in value):
            return f"statusDetails value of {key!r} contains a control or unassigned character"
    return None


def _status_details(doc: dict) -> Optional[Dict[str, str]]:
    details = doc.get("statusDetails")
    if details is None:
        return None
    problem = status_details_error(details)
    if problem:
        raise JobsError(INVALID_REQUEST, problem)
    return dict(details)


# -- replies

def reply(request: JobsRequest, doc: dict, token: Optional[str], now: int) -> Response:
    doc = dict(doc, timestamp=now)
    if token is not None:
        doc["clientToken"] = token
    return request.response("accepted"), doc


def rejection(request: JobsRequest, error: JobsError, token: Optional[str],
              now: int) -> Response:
    """The */rejected document (§7.6)."""
    doc = {"code": error.code, "message": error.message, "timestamp": now}
    if token is not None:
        doc["clientToken"] = token
    if error.execution is not None and error.code in (INVALID_STATE_TRANSITION,
                                                      VERSION_MISMATCH):
        doc["executionState"] = error.execution.state()
    return request.response("rejected"), doc


def token_of(payload: bytes) -> Optional[str]:
    """The request's clientToken when it has a valid one (for rejections made early)."""
    try:
        return _token(_object(payload))
    except JobsError:
        return None


# -- the API (§7.3)

def handle(executions: Executions, request: JobsRequest, payload: bytes, now: int,
           options: JobsOptions = JobsOptions()) -> Tuple[Executions, List[Response]]:
    """Answer one device request: (new executions, [reply, events...])."""
    token = None
    try:
        if request.api is None:
            raise JobsError(INVALID_TOPIC, f"The topic {request.topic} maps to no Jobs API")
        doc = _object(payload)
        token = _token(doc)
        new, answer = _APIS[request.api](executions, request, doc, now, options)
    except JobsError as error:
        return executions, [rejection(request, error, token, now)]
    return new, [reply(request, answer, token, now)] + events(
        request.thing, executions, new, now, options)


def _get_pending(executions, request, doc, now, options):
    listed = pending(executions)[:options.max_listed]
    return executions, {
        "inProgressJobs": [e.summary() for e in listed if e.status == IN_PROGRESS],
        "queuedJobs": [e.summary() for e in listed if e.status == QUEUED]}


def _start(execution: Execution, details, step_minutes: Optional[int], now: int) -> Execution:
    """QUEUED -> IN_PROGRESS: the in-progress timer starts, and the step timer if asked."""
    in_progress = execution.in_progress_minutes
    return dataclasses.replace(
        execution, status=enter(execution.status, IN_PROGRESS, DEVICE_MOVES),
        started_at=now, last_updated_at=now, version=execution.version + 1,
        status_details=details if details is not None else execution.status_details,
        in_progress_deadline=now + 60 * in_progress if in_progress else None,
        step_deadline=now + 60 * step_minutes if step_minutes else None)


def _replace(executions: Executions, new: Execution) -> Executions:
    return tuple(new if e.key == new.key else e for e in executions)


def _start_next(executions, request, doc, now, options):
    details = _status_details(doc)
    step = _integer(doc, "stepTimeoutInMinutes", 1, MAX_TIMER_MINUTES)
    first = head(executions)
    if first is None:
        return executions, {}
    if first.status == QUEUED:
        first = _start(first, details, step, now)
        executions = _replace(executions, first)
    # [?] an IN_PROGRESS pick comes back unchanged: its details and timers stay
    return executions, {"execution": first.wire(now)}


def _find(executions: Executions, job_id: str, number: Optional[int]) -> Execution:
    found = [e for e in executions if e.job_id == job_id
             and (number is None or e.execution_number == number)]
    if not found:
        raise JobsError(RESOURCE_NOT_FOUND, f"No job execution found for job {job_id}"
                        + (f" with execution number {number}" if number else ""))
    return max(found, key=lambda e: e.execution_number)


def _describe(executions, request, doc, now, options):
    number = _integer(doc, "executionNumber", 1)
    with_document = _boolean(doc, "includeJobDocument", True)
    if request.job_id == NEXT:
        first = head(executions)
        return executions, {} if first is None else {"execution": first.wire(now,
                                                                              with_document)}
    execution = _find(executions, request.job_id, number)
    if execution.status in TERMINAL and options.describe_terminal_error:
        raise JobsError(TERMINAL_STATE_REACHED,
                        f"Job execution {request.job_id} is in terminal state "
                        f"{execution.status}")
    return executions, {"execution": execution.wire(now, with_document)}


def _update(executions, request, doc, now, options):
    status = doc.get("status")
    if status not in DEVICE_SETS:
        raise JobsError(INVALID_REQUEST, "status must be one of " + ", ".join(DEVICE_SETS))
    details = _status_details(doc)
    expected = _integer(doc, "expectedVersion", 0, strings=True)
    number = _integer(doc, "executionNumber", 1)
    step = _integer(doc, "stepTimeoutInMinutes", 1, MAX_TIMER_MINUTES, also=(-1,))
    with_state = _boolean(doc, "includeJobExecutionState", False)
    with_document = _boolean(doc, "includeJobDocument", False)
    execution = _find(executions, request.job_id, number)
    if execution.status in TERMINAL:
        raise JobsError(INVALID_STATE_TRANSITION,
                        f"Job execution {request.job_id} is already in terminal state "
                        f"{execution.status}", execution)
    if expected is not None and expected != execution.version:
        raise JobsError(VERSION_MISMATCH, f"expectedVersion {expected} does not match the "
                        f"current version {execution.version}", execution)
    if execution.status == QUEUED and status == IN_PROGRESS:
        new = _start(execution, details, step if step != -1 else None, now)
    else:
        try:
            new_status = enter(execution.status, status, DEVICE_MOVES)
        except TransitionRefused:
            raise JobsError(INVALID_STATE_TRANSITION, f"Cannot move job execution from "
                            f"{execution.status} to {status}", execution) from None
        new = dataclasses.replace(
            execution, status=new_status, last_updated_at=now, version=execution.version + 1,
            status_details=details if details is not None else execution.status_details)
        if new_status in TERMINAL:
            new = dataclasses.replace(new, in_progress_deadline=None, step_deadline=None)
        elif step is not None:
            new = dataclasses.replace(new, step_deadline=None if step == -1
                                      else now + 60 * step)
    answer: dict = {}
    if with_state:
        answer["executionState"] = new.state()
    if with_document:
        answer["jobDocument"] = new.document
    return _replace(executions, new), answer


_APIS = {"get": _get_pending, "start-next": _start_next, "describe": _describe,
         "update": _update}


# -- the cloud side (control plane)

def document_error(document) -> Optional[str]:
    """Why DOCUMENT cannot be a job document (§7.8), or None."""
    if not isinstance(document, dict):
        return "a job document must be a JSON object"
    if len(json.dumps(document, separators=(",", ":"), ensure_ascii=False)) \
            > MAX_DOCUMENT_CHARS:
        return f"a job document must be at most {MAX_DOCUMENT_CHARS} characters"
    return None


def create(executions: Executions, thing: str, job_id: str, document: dict, now: int,
           in_progress_minutes: Optional[int] = None,
           options: JobsOptions = JobsOptions()) -> Tuple[Executions, List[Response]]:
    """CreateJob targeting THING: a QUEUED execution (number 1, version 1) and its events."""
    if not JOB_ID.match(job_id):
        raise JobsError(INVALID_REQUEST, "a job ID is 1 to 64 characters of [a-zA-Z0-9_-]")
    problem = document_error(document)
    if problem:
        raise JobsError(INVALID_REQUEST, problem)
    if in_progress_minutes is not None and not 1 <= in_progress_minutes <= MAX_TIMER_MINUTES:
        raise JobsError(INVALID_REQUEST, f"the in-progress timeout is 1 to "
                                         f"{MAX_TIMER_MINUTES} minutes")
    if any(e.job_id == job_id for e in executions):
        raise JobsError(RESOURCE_ALREADY_EXISTS, f"job {job_id} already exists")
    execution = Execution(job_id, 1, QUEUED, now, now, 1, document,
                          in_progress_minutes=in_progress_minutes)
    new = executions + (execution,)
    return new, events(thing, executions, new, now, options)


def _service_move(executions: Executions, execution: Execution, status: str,
                  now: int) -> Executions:
    moved = dataclasses.replace(execution, status=enter(execution.status, status,
                                                        SERVICE_MOVES),
                                last_updated_at=now, in_progress_deadline=None,
                                step_deadline=None)
    return _replace(executions, moved)


def cancel(executions: Executions, thing: str, job_id: str, force: bool, now: int,
           options: JobsOptions = JobsOptions()
           ) -> Tuple[Executions, List[Response], Optional[Execution]]:
    """CancelJob for THING's execution of JOB_ID: a QUEUED one is CANCELED, an IN_PROGRESS
    one only with FORCE (else it runs on, as AWS's CancelJob leaves it). Returns the
    execution as it is afterwards (None when THING has none)."""
    found = [e for e in executions if e.job_id == job_id]
    if not found:
        return executions, [], None
    execution = max(found, key=lambda e: e.execution_number)
    if execution.status == QUEUED or (force and execution.status == IN_PROGRESS):
        new = _service_move(executions, execution, CANCELED, now)
        return new, events(thing, executions, new, now, options), _find(new, job_id, None)
    return executions, [], execution


def expire(executions: Executions, thing: str, now: int,
           options: JobsOptions = JobsOptions()) -> Tuple[Executions, List[Response]]:
    """Time out every execution whose timer ran out by NOW (§7.7)."""
    new = executions
    for execution in executions:
        if execution.status == IN_PROGRESS and execution.deadline is not None \
                and execution.deadline <= now:
            new = _service_move(new, execution, TIMED_OUT, now)
    if new is executions:
        return executions, []
    return new, events(thing, executions, new, now, options)


def next_deadline(executions: Sequence[Execution]) -> Optional[int]:
    deadlines = [e.deadline for e in executions
                 if e.status == IN_PROGRESS and e.deadline is not None]
    return min(deadlines) if deadlines else None
