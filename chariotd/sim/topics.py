"""Topic names of the shadow, fleet-provisioning, Jobs and Defender MQTT APIs, and the
simulator's own control topics (IOT_CORE.md §2.1, §3, §4, §7.1, §8.1)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}\Z")
SHADOW_NAME = re.compile(r"[$a-zA-Z0-9:_-]{1,64}\Z")
SHADOW_OPS = ("get", "update", "delete")

# What the service subscribes to: request topics only, never a response topic.
SHADOW_REQUEST_FILTERS = tuple(
    [f"$aws/things/+/shadow/{op}" for op in SHADOW_OPS]
    + [f"$aws/things/+/shadow/name/+/{op}" for op in SHADOW_OPS])
PROVISIONING_REQUEST_FILTERS = (
    "$aws/certificates/create/+",
    "$aws/certificates/create-from-csr/+",
    "$aws/provisioning-templates/+/provision/+",
)
JOBS_REQUEST_FILTERS = (
    "$aws/things/+/jobs/get",
    "$aws/things/+/jobs/start-next",
    "$aws/things/+/jobs/+/get",
    "$aws/things/+/jobs/+/update",
)
DEFENDER_REQUEST_FILTERS = ("$aws/things/+/defender/metrics/+",)
JOB_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}\Z")
NEXT = "$next"

# The cloud side's requests to the simulator (job create/list/describe/cancel, defender
# reports): only the simulator's identity may use $iotsim/ (acl.py). Replies go to
# TOPIC/accepted or TOPIC/rejected with the request's clientToken.
CONTROL_PREFIX = "$iotsim/"
CONTROL_FILTER = "$iotsim/+/+"


@dataclass(frozen=True)
class ShadowRequest:
    """A request on TOPIC: OP on THING's shadow SHADOW (None for the classic shadow)."""

    thing: str
    shadow: Optional[str]
    op: str

    @property
    def prefix(self) -> str:
        return shadow_prefix(self.thing, self.shadow)

    def response(self, suffix: str) -> str:
        return f"{self.prefix}/{self.op}/{suffix}"


def shadow_prefix(thing: str, shadow: Optional[str] = None) -> str:
    if shadow:
        return f"$aws/things/{thing}/shadow/name/{shadow}"
    return f"$aws/things/{thing}/shadow"


def parse_shadow_request(topic: str) -> Optional[ShadowRequest]:
    """The request a topic names, or None when it is not a valid shadow request topic."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[:2] == ["$aws", "things"] and parts[3] == "shadow":
        thing, shadow, op = parts[2], None, parts[4]
    elif (len(parts) == 7 and parts[:2] == ["$aws", "things"] and parts[3] == "shadow"
          and parts[4] == "name"):
        thing, shadow, op = parts[2], parts[5], parts[6]
        if not SHADOW_NAME.match(shadow):
            return None
    else:
        return None
    if op not in SHADOW_OPS or not THING_NAME.match(thing):
        return None
    return ShadowRequest(thing, shadow, op)


def split_thing_shadow(text: str):
    """'THING' or 'THING/SHADOW' (the form chariotd's flags take) as (thing, shadow or None)."""
    thing, _, shadow = text.partition("/")
    if not THING_NAME.match(thing) or (shadow and not SHADOW_NAME.match(shadow)):
        raise ValueError(f"not a thing name or THING/SHADOW: {text!r}")
    return thing, shadow or None


def tunnel_notify_topic(thing: str) -> str:
    return f"$aws/things/{thing}/tunnels/notify"


@dataclass(frozen=True)
class JobsRequest:
    """A request on TOPIC to THING's Jobs API: API is get, start-next, describe or update
    (JOB_ID set for the last two, possibly "$next"), or None: a topic no API maps to."""

    topic: str
    thing: str
    api: Optional[str]
    job_id: Optional[str] = None

    def response(self, suffix: str) -> str:
        return f"{self.topic}/{suffix}"


def jobs_prefix(thing: str) -> str:
    return f"$aws/things/{thing}/jobs"


def parse_jobs_request(topic: str) -> Optional[JobsRequest]:
    """The Jobs request TOPIC names; None when it is no topic under a valid thing's jobs/.
    A topic under jobs/ that maps to no API (or names an invalid job ID) has api None."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[:2] != ["$aws", "things"] or parts[3] != "jobs" \
            or not THING_NAME.match(parts[2]):
        return None
    thing, rest = parts[2], parts[4:]
    if rest in (["get"], ["start-next"]):
        return JobsRequest(topic, thing, rest[0])
    if len(rest) == 2 and rest[1] in ("get", "update"):
        job_id = rest[0]
        if job_id == NEXT and rest[1] == "get" or JOB_ID.match(job_id):
            return JobsRequest(topic, thing, "describe" if rest[1] == "get" else "update",
                               job_id)
    return JobsRequest(topic, thing, None)


def defender_topic(thing: str, fmt: str = "json") -> str:
    return f"$aws/things/{thing}/defender/metrics/{fmt}"


def parse_defender_topic(topic: str) -> Optional[Tuple[str, str]]:
    """(thing, format) of a Defender report topic, or None."""
    parts = topic.split("/")
    if len(parts) == 6 and parts[:2] == ["$aws", "things"] and parts[3:5] == [
            "defender", "metrics"] and parts[5] in ("json", "cbor") \
            and THING_NAME.match(parts[2]):
        return parts[2], parts[5]
    return None


def control_topic(service: str, op: str) -> str:
    return f"{CONTROL_PREFIX}{service}/{op}"
