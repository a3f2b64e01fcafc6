"""A message file (pure): JSON with `topic`, `payload` and optionally `qos`.

    {"topic": "my/topic", "qos": 1, "payload": {"key": "my data"}}

An object (or any non-string) payload is sent as compact JSON text, a string as is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from chariotd.topics import BadTopic, check_publish_topic

MAX_PAYLOAD = 128 * 1024  # AWS IoT Core's message size limit


class BadMessage(ValueError):
    pass


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    qos: int = 1


def _refuse_constant(name: str):
    raise BadMessage(f"not JSON: {name} is not a JSON value")


def decode_json(data: bytes):
    """Strict JSON from bytes: UTF-8, no NaN/Infinity. Raises BadMessage."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadMessage(f"not UTF-8 text (byte {error.start})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise BadMessage(f"not JSON: {error}") from None
    except RecursionError:
        raise BadMessage("not JSON: nested too deeply") from None


def encode_payload(value) -> bytes:
    if value is None:
        raise BadMessage("payload is null")
    try:
        if isinstance(value, str):
            return value.encode("utf-8")
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadMessage("payload is not valid Unicode (lone surrogate)") from None


def parse_message(data: bytes) -> Message:
    """Parse a message file's bytes, or raise BadMessage saying what is wrong."""
    document = decode_json(data)
    if not isinstance(document, dict):
        raise BadMessage(f"a message is a JSON object, not {type(document).__name__}")
    for key in ("topic", "payload"):
        if key not in document:
            raise BadMessage(f"missing {key!r}")
    try:
        topic = check_publish_topic(document["topic"])
    except BadTopic as error:
        raise BadMessage(str(error)) from None
    qos = document.get("qos", 1)
    if isinstance(qos, bool) or qos not in (0, 1):
        raise BadMessage(f"qos must be 0 or 1, not {json.dumps(qos)}")
    payload = encode_payload(document["payload"])
    if len(payload) > MAX_PAYLOAD:
        raise BadMessage(f"payload is {len(payload)} bytes; AWS IoT Core allows {MAX_PAYLOAD}")
    return Message(topic=topic, payload=payload, qos=qos)
