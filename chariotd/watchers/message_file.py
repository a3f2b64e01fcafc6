"""A message file (pure): JSON with `topic` and `payload`, and optionally `qos`,
`compress`, `priority` and `priority_slot`.

    {"topic": "my/topic", "qos": 1, "payload": {"key": "my data"}}

An object (or any non-string) payload is sent as compact JSON text, a string as is.
`compress` (gzip or deflate) compresses that text; any other value is reported back as
a warning and the payload goes out uncompressed. `priority` is a number (lower goes
first), `priority_slot` a string or a number; null means absent for both.

Reading a message takes steps, because a letterhead may come between them:
`read_document` (the file's own JSON and its required keys), `full_topic` (with the
directory's prefix and suffix), then `build_message` on the document merged on top of
its letterhead. `parse_message` does all three with no letterhead. `peek_priority`
learns the priority fields of a file that has just arrived, parsing it only when its
bytes can hold them.
"""

from __future__ import annotations

import json
from typing import NamedTuple, Optional, Tuple, Union

from chariotd.formats import FormatError
from chariotd.formats.json import load as load_json
from chariotd.kernel.topics import BadTopic, check_not_reserved, check_publish_topic
from chariotd.watchers.compression import UnknownCompression, compress

MAX_PAYLOAD = 128 * 1024  # AWS IoT Core's message size limit


class BadMessage(ValueError):
    pass


Number = Union[int, float]
Slot = Union[str, int, float]


class Message(NamedTuple):
    topic: str
    payload: bytes          # as published: encoded, and compressed when asked
    qos: int = 1
    warning: str = ""       # logged by the caller; the message still goes out


# One encoder for every file (json.dumps with options would build one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def decode_json(data: bytes):
    """Strict JSON from bytes (formats.json.load: UTF-8, no NaN/Infinity, a payload
    nested at most MAX_DEPTH levels inside its document). Raises BadMessage."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadMessage(f"not UTF-8 text (byte {error.start})") from None
    try:
        return load_json(text, envelope=1)
    except FormatError as error:
        raise BadMessage(f"not JSON: {error}") from None


def encode_payload(value) -> bytes:
    if value is None:
        raise BadMessage("payload is null")
    try:
        if isinstance(value, str):
            return value.encode("utf-8")
        return _ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        raise BadMessage("payload is not valid Unicode (lone surrogate)") from None
    except RecursionError:
        raise BadMessage("payload is nested too deeply") from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise BadMessage(f"payload cannot be encoded: {error}") from None


def shown(value, limit: int = 40) -> str:
    """VALUE as JSON for a log line, cut at LIMIT characters (any value: a hostile
    one nested too deeply for the encoder is named by its type)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (RecursionError, ValueError):
        text = f"a nested {type(value).__name__}"
    return text[:limit]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def priority_fields(document: dict) -> Tuple[Optional[Number], Optional[Slot]]:
    """(priority, priority_slot) of a message document, or raise BadMessage."""
    priority = document.get("priority")
    slot = document.get("priority_slot")
    if priority is not None and not _is_number(priority):
        raise BadMessage(f"priority must be a number, not {shown(priority)}")
    if slot is not None and not (isinstance(slot, str) or _is_number(slot)):
        raise BadMessage(f"priority_slot must be a string or a number, "
                         f"not {shown(slot)}")
    return priority, slot


def read_document(data: bytes) -> dict:
    """A message file's JSON object, with `topic` and `payload` present and valid
    priority fields, or raise BadMessage saying what is wrong."""
    document = decode_json(data)
    if not isinstance(document, dict):
        raise BadMessage(f"a message is a JSON object, not {type(document).__name__}")
    for key in ("topic", "payload"):
        if key not in document:
            raise BadMessage(f"missing {key!r}")
    priority_fields(document)
    return document


def peek_priority(data: bytes) -> Tuple[Optional[Number], Optional[Slot]]:
    """The priority fields of a file's bytes, cheaply: without parsing when the bytes
    cannot spell the keys (no "priority" and no \\u escape), and (None, None) for a file
    that is malformed (it is refused with its reason when it is published)."""
    if b"priority" not in data and b"\\u" not in data:
        return None, None
    try:
        return priority_fields(read_document(data))
    except BadMessage:
        return None, None


def full_topic(document: dict, prefix: str = "", suffix: str = "",
               allow_reserved: bool = False) -> str:
    """The topic a document is published to: PREFIX + its topic + SUFFIX, checked
    against AWS IoT Core's limits as a whole, and not a reserved `$` topic other than
    `$aws/rules/...` unless ALLOW_RESERVED."""
    topic = document.get("topic")
    if not isinstance(topic, str):
        raise BadMessage(f"topic must be a string, not {type(topic).__name__}")
    if not topic:
        raise BadMessage("topic is empty")
    try:
        full = check_publish_topic(prefix + topic + suffix)
        return full if allow_reserved else check_not_reserved(full)
    except BadTopic as error:
        raise BadMessage(str(error)) from None


def build_message(document: dict, topic: str) -> Message:
    """The message to publish to TOPIC from DOCUMENT (a message file's document,
    possibly merged on top of a letterhead), or raise BadMessage."""
    qos = document.get("qos", 1)
    if isinstance(qos, bool) or not isinstance(qos, (int, float)) or qos not in (0, 1):
        raise BadMessage(f"qos must be 0 or 1, not {shown(qos)}")
    qos = int(qos)  # 1.0 is 1 in JSON
    payload = encode_payload(document.get("payload"))
    warning = ""
    method = document.get("compress")
    if method is not None:
        try:
            payload = compress(payload, method)
        except UnknownCompression as error:
            warning = str(error)
    if len(payload) > MAX_PAYLOAD:
        raise BadMessage(f"payload is {len(payload)} bytes; AWS IoT Core allows {MAX_PAYLOAD}")
    return Message(topic=topic, payload=payload, qos=qos, warning=warning)


def parse_message(data: bytes, prefix: str = "", suffix: str = "",
                  allow_reserved: bool = False) -> Message:
    """Parse a message file's bytes (no letterhead), or raise BadMessage."""
    document = read_document(data)
    return build_message(document, full_topic(document, prefix, suffix, allow_reserved))
