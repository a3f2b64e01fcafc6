"""Device shadow topics (pure): request topics, the response filters a device
subscribes to, and reading a response topic back (IOT_CORE.md section 2.1)."""

from __future__ import annotations

from typing import List, Optional, Tuple

from chariotd.config import ThingShadow

# AWS takes at most 8 topic filters in one SUBSCRIBE.
FILTERS_PER_SUBSCRIBE = 8


def prefix(target: ThingShadow) -> str:
    base = f"$aws/things/{target.thing}/shadow"
    return base if target.shadow is None else f"{base}/name/{target.shadow}"


def request_topic(target: ThingShadow, op: str) -> str:
    return f"{prefix(target)}/{op}"


def response_filters(target: ThingShadow) -> List[str]:
    base = prefix(target)
    return [f"{base}/get/+", f"{base}/update/accepted", f"{base}/update/rejected",
            f"{base}/update/delta"]


def parse_response_topic(topic: str) -> Optional[Tuple[ThingShadow, str, str]]:
    """(target, op, status) for a shadow response topic, else None."""
    parts = topic.split("/")
    if len(parts) < 6 or parts[0] != "$aws" or parts[1] != "things" or parts[3] != "shadow":
        return None
    thing = parts[2]
    if parts[4] == "name" and len(parts) == 8:
        target, op, status = ThingShadow(thing, parts[5]), parts[6], parts[7]
    elif len(parts) == 6:
        target, op, status = ThingShadow(thing), parts[4], parts[5]
    else:
        return None
    if op not in ("get", "update", "delete"):
        return None
    return target, op, status


def batches(filters: List[str]) -> List[List[str]]:
    return [filters[i:i + FILTERS_PER_SUBSCRIBE]
            for i in range(0, len(filters), FILTERS_PER_SUBSCRIBE)]
