"""Parse and validate shadow request payloads, with AWS's error codes and texts (§2.2, §2.6)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from chariotd.shadow.values import deeper_than, has_null_in_array

MAX_TOKEN_BYTES = 64
DEFAULT_MAX_DEPTH = 6
SECTIONS = ("desired", "reported")

INVALID_JSON = "Invalid JSON"
MISSING_STATE = "Missing required node: state"
STATE_NOT_OBJECT = "State node must be an object"
DESIRED_NOT_OBJECT = "Desired node must be an object"
REPORTED_NOT_OBJECT = "Reported node must be an object"
INVALID_VERSION = "Invalid version"
INVALID_TOKEN = "Invalid clientToken"
TOO_DEEP = "JSON contains too many levels of nesting; maximum is {max_depth}"
INVALID_NODE = "State contains an invalid node: '{node}'"
VERSION_CONFLICT = "Version conflict"
TOO_LARGE = "The payload exceeds the maximum size allowed"
BAD_ENCODING = "Unsupported documented encoding; supported encoding is UTF-8"
THING_NOT_FOUND = "Thing not found"
NO_SHADOW = "No shadow exists with name: '{name}'"


class ShadowError(Exception):
    """A rejected request: CODE and MESSAGE go into the */rejected payload."""

    def __init__(self, code: int, message: str, client_token: Optional[str] = None):
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.client_token = client_token

    def payload(self, timestamp: Optional[int] = None) -> dict:
        doc: dict = {"code": self.code, "message": self.message}
        if timestamp is not None:
            doc["timestamp"] = timestamp
        if self.client_token is not None:
            doc["clientToken"] = self.client_token
        return doc


@dataclass(frozen=True)
class UpdateRequest:
    """A valid update: STATE is None for ``"state": null`` (clear the document)."""

    state: Optional[dict]
    client_token: Optional[str] = None
    version: Optional[int] = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def decode_json(payload: bytes) -> Any:
    """PAYLOAD as a JSON value: 415 for bad UTF-8, 400 Invalid JSON for anything else wrong."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ShadowError(415, BAD_ENCODING) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ShadowError(400, INVALID_JSON) from None


def _token(doc: dict) -> Optional[str]:
    if "clientToken" not in doc:
        return None
    token = doc["clientToken"]
    if not isinstance(token, str) or len(token.encode("utf-8")) > MAX_TOKEN_BYTES:
        raise ShadowError(400, INVALID_TOKEN)
    return token


def parse_token(payload: bytes) -> Optional[str]:
    """The clientToken of a get or delete request.

    Their payload may be empty or any content (the service ignores it), or JSON
    carrying a clientToken, which is echoed; a token over 64 bytes is a 400.
    """
    if not payload.strip():
        return None
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    return _token(doc)


def parse_update(payload: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> UpdateRequest:
    """Validate an update request payload; raise ShadowError with AWS's code and text."""
    doc = decode_json(payload)
    if not isinstance(doc, dict):
        raise ShadowError(400, INVALID_JSON)
    token = _token(doc)

    def fail(code: int, message: str) -> ShadowError:
        return ShadowError(code, message, token)

    version = doc.get("version")
    if "version" in doc and (isinstance(version, bool) or not isinstance(version, int)
                             or version < 0):
        raise fail(400, INVALID_VERSION)
    if "state" not in doc:
        raise fail(400, MISSING_STATE)
    state = doc["state"]
    if state is None:
        return UpdateRequest(None, token, version)
    if not isinstance(state, dict):
        raise fail(400, STATE_NOT_OBJECT)
    for node in state:
        if node not in SECTIONS:
            raise fail(400, INVALID_NODE.format(node=node))
    for section, text in (("desired", DESIRED_NOT_OBJECT), ("reported", REPORTED_NOT_OBJECT)):
        value = state.get(section)
        if section in state and value is not None and not isinstance(value, dict):
            raise fail(400, text)
    for section in SECTIONS:
        value = state.get(section)
        if value is None:
            continue
        if deeper_than(value, max_depth):
            raise fail(400, TOO_DEEP.format(max_depth=max_depth))
        if has_null_in_array(value):
            raise fail(400, INVALID_JSON)
    return UpdateRequest(state, token, version)
