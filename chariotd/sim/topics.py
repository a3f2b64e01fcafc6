"""Topic names of the shadow and fleet-provisioning MQTT APIs (IOT_CORE.md §2.1, §3, §4)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

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
