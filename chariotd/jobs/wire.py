"""The Jobs MQTT API as the device sees it (pure; IOT_CORE.md §7): topics, request
payloads, and the replies and events read from the cloud, which may hold anything.

The topic names are chariotd/aws/jobs_topics.py's (the link subscribes to
`subscriptions(thing)` there and hands what arrives to the jobs role). Replies are
matched by clientToken alone, as AWS's SDK does; `parse` checks the thing in the topic and every field it uses.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Dict, Optional, Union

from chariotd.aws.jobs_topics import (DESCRIBE, NOTIFY_NEXT, START_NEXT, UPDATE,  # noqa: F401
                                      prefix, subscriptions)
from chariotd.formats.errors import FormatError
from chariotd.formats.json import load as load_json

JOB_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAX_TOKEN_CHARS = 64
MAX_STEP_MINUTES = 10080
TERMINAL = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED")
STATUSES = ("QUEUED", "IN_PROGRESS") + TERMINAL

# Rejection codes (§7.6)
VERSION_MISMATCH = "VersionMismatch"
GONE = ("InvalidStateTransition", "TerminalStateReached", "ResourceNotFound")
RETRYABLE = ("RequestThrottled", "InternalError")


class BadMessage(ValueError):
    """A message on a jobs topic that cannot be used; str() says why."""


def step_minutes(seconds: float) -> int:
    """stepTimeoutInMinutes for a handler time limit: rounded up, plus a minute for the
    final update to arrive, within 1..10080."""
    return max(1, min(MAX_STEP_MINUTES, math.ceil(seconds / 60) + 1))


# ------------------------------------------------------------------ requests

def _payload(fields: Dict[str, object]) -> bytes:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def start_next(thing: str, token: str, step_timeout: int):
    return (f"{prefix(thing)}/{START_NEXT}",
            _payload({"clientToken": token, "stepTimeoutInMinutes": step_timeout}))


def update(thing: str, job_id: str, token: str, status: str, details: Dict[str, str],
           expected_version: int, execution_number: int,
           step_timeout: Optional[int] = None):
    fields = {"status": status, "statusDetails": details,
              "expectedVersion": expected_version, "executionNumber": execution_number,
              "clientToken": token}
    if step_timeout is not None:
        fields["stepTimeoutInMinutes"] = step_timeout
    return f"{prefix(thing)}/{job_id}/{UPDATE}", _payload(fields)


def describe(thing: str, job_id: str, token: str, execution_number: int):
    return (f"{prefix(thing)}/{job_id}/{DESCRIBE}",
            _payload({"executionNumber": execution_number, "includeJobDocument": False,
                      "clientToken": token}))


# ------------------------------------------------------------------ replies and events

@dataclass(frozen=True)
class Execution:
    job_id: str
    execution_number: int
    version: int
    status: str
    document: object = None  # the job document as sent (None when not sent)
    seconds_left: Optional[int] = None  # approximateSecondsBeforeTimedOut


@dataclass(frozen=True)
class Accepted:
    api: str  # START_NEXT, UPDATE or DESCRIBE
    job_id: Optional[str]  # from the topic (None for start-next)
    token: Optional[str]
    execution: Optional[Execution] = None  # start-next and describe


@dataclass(frozen=True)
class Rejected:
    api: str
    job_id: Optional[str]
    token: Optional[str]
    code: str
    message: str = ""
    state_status: Optional[str] = None  # from executionState, when sent
    state_version: Optional[int] = None


@dataclass(frozen=True)
class NotifyNext:
    execution: Optional[Execution]


Event = Union[Accepted, Rejected, NotifyNext]


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 63:
        raise BadMessage(f"{name} is not a count")
    return value


def execution(value: object) -> Execution:
    if not isinstance(value, dict):
        raise BadMessage("execution is not an object")
    job_id = value.get("jobId")
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise BadMessage(f"jobId {ascii(job_id)[:80]} is not a job id")
    status = value.get("status")
    if status not in STATUSES:
        raise BadMessage(f"status {ascii(status)[:40]} is not known")
    left = value.get("approximateSecondsBeforeTimedOut")
    return Execution(job_id, _count(value.get("executionNumber"), "executionNumber"),
                     _count(value.get("versionNumber"), "versionNumber"), status,
                     value.get("jobDocument"),
                     None if left is None else _count(left, "approximateSecondsBeforeTimedOut"))


def _token(body: dict) -> Optional[str]:
    token = body.get("clientToken")
    return token if isinstance(token, str) and len(token) <= MAX_TOKEN_CHARS else None


def parse(thing: str, topic: str, payload: bytes) -> Optional[Event]:
    """The event TOPIC and PAYLOAD carry for THING; None when the topic is not one of
    its jobs replies or events; BadMessage when it is, but cannot be used."""
    p = prefix(thing) + "/"
    if not topic.startswith(p):
        return None
    parts = topic[len(p):].split("/")
    try:
        body = load_json(payload)
    except FormatError as error:
        raise BadMessage(f"{topic}: {error}") from None
    if not isinstance(body, dict):
        raise BadMessage(f"{topic}: not a JSON object")
    try:
        if parts == [NOTIFY_NEXT]:
            found = body.get("execution")
            return NotifyNext(None if found is None else execution(found))
        if len(parts) == 2 and parts[0] == START_NEXT:
            api, job_id, outcome = START_NEXT, None, parts[1]
        elif len(parts) == 3 and parts[1] in (UPDATE, DESCRIBE) and JOB_ID.fullmatch(parts[0]):
            api, job_id, outcome = parts[1], parts[0], parts[2]
        else:
            return None
        if outcome == "accepted":
            found = body.get("execution") if api != UPDATE else None
            return Accepted(api, job_id, _token(body),
                            None if found is None else execution(found))
        if outcome == "rejected":
            return _rejected(api, job_id, body)
        return None
    except BadMessage as error:
        raise BadMessage(f"{topic}: {error}") from None


def _rejected(api: str, job_id: Optional[str], body: dict) -> Rejected:
    code = body.get("code")
    if not isinstance(code, str):
        raise BadMessage("rejection without a code")
    message = body.get("message")
    state = body.get("executionState")
    status = version = None
    if isinstance(state, dict):
        status = state.get("status") if state.get("status") in STATUSES else None
        version = state.get("versionNumber")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            version = None
    return Rejected(api, job_id, _token(body), code[:64],
                    message[:200] if isinstance(message, str) else "", status, version)
