"""Device Defender's topics and replies (IOT_CORE.md 8.1, 8.3), pure: the defender role
publishes on `report_topic`, the link subscribes to `reply_topics` and turns what
arrives there into a `Reply` with `parse_reply`.

A reply comes from the cloud, so nothing in it is trusted: it is read through the one
JSON loader; `reportId` is kept only when it is a positive integer that fits AWS's long;
the rejection's `statusDetails.ErrorCode` and `ErrorMessage` are kept only when they are
strings, cut to MAX_CODE and MAX_MESSAGE characters (the log escapes what they hold).
Only `reportId` is documented (IOT_CORE.md 8.3); the rest is read where it is, and
missing fields are simply empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from chariotd.formats import FormatError
from chariotd.formats.json import load as load_json

REPORT_TOPIC = "$aws/things/{thing}/defender/metrics/json"
ACCEPTED, REJECTED = "accepted", "rejected"
MAX_CODE = 64
MAX_MESSAGE = 200
MAX_REPORT_ID = 2 ** 63 - 1


def report_topic(thing: str) -> str:
    return REPORT_TOPIC.format(thing=thing)


def reply_topics(thing: str) -> List[str]:
    """The two topics the answers to THING's JSON reports come on."""
    return [f"{report_topic(thing)}/{ACCEPTED}", f"{report_topic(thing)}/{REJECTED}"]


def parse_reply_topic(topic: str) -> Optional[Tuple[str, bool]]:
    """(thing, accepted) for a reply topic of a JSON report; None for any other topic."""
    head, _, status = topic.rpartition("/")
    if status not in (ACCEPTED, REJECTED):
        return None
    prefix, suffix = REPORT_TOPIC.split("{thing}")
    if not (head.startswith(prefix) and head.endswith(suffix)):
        return None
    thing = head[len(prefix):len(head) - len(suffix)]
    if not thing or "/" in thing:
        return None
    return thing, status == ACCEPTED


@dataclass(frozen=True)
class Reply:
    accepted: bool
    report_id: Optional[int]  # None: the reply names none we can use
    code: str = ""
    message: str = ""


def _short(value, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    return value if len(value) <= limit else value[:limit] + "..."


def parse_reply(accepted: bool, payload: bytes) -> Reply:
    """The reply in PAYLOAD; ValueError (a FormatError) with a one-line reason when it is
    not a JSON object."""
    try:
        doc = load_json(payload)
    except FormatError as error:
        raise FormatError(f"not JSON: {error}") from None
    if not isinstance(doc, dict):
        raise FormatError("not a JSON object")
    report_id = doc.get("reportId")
    if not (isinstance(report_id, int) and not isinstance(report_id, bool)
            and 0 < report_id <= MAX_REPORT_ID):
        report_id = None
    details = doc.get("statusDetails")
    if not isinstance(details, dict):
        details = {}
    return Reply(accepted, report_id, _short(details.get("ErrorCode"), MAX_CODE),
                 _short(details.get("ErrorMessage"), MAX_MESSAGE))
