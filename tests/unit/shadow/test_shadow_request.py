"""Validation of update/get/delete payloads with AWS's texts (IOT_CORE.md §2.2, §2.6)."""

from __future__ import annotations

import json

import pytest

from chariotd.sim.shadow.request import ShadowError, parse_token, parse_update


def _j(doc) -> bytes:
    return json.dumps(doc).encode()


def deep(levels: int):
    value = 1
    for _ in range(levels):
        value = {"k": value}
    return value


REJECTIONS = [
    # (section, payload, code, message, token echoed)
    ("§2.6 invalid JSON", b"{not json", 400, "Invalid JSON", None),
    ("§2.6 JSON that is not an object", b"[1,2]", 400, "Invalid JSON", None),
    ("§2.6 NaN is not JSON", b'{"state":{"desired":{"a":NaN}}}', 400, "Invalid JSON", None),
    ("§2.6 not UTF-8", b'{"state":{"desired":{"a":"\xff"}}}', 415,
     "Unsupported documented encoding; supported encoding is UTF-8", None),
    ("§2.6 missing state", _j({"clientToken": "t1"}), 400, "Missing required node: state", "t1"),
    ("§2.6 state not an object", _j({"state": 5, "clientToken": "t"}), 400,
     "State node must be an object", "t"),
    ("§2.6 state is an array", _j({"state": []}), 400, "State node must be an object", None),
    ("§2.6 desired not an object", _j({"state": {"desired": 5}}), 400,
     "Desired node must be an object", None),
    ("§2.6 reported not an object", _j({"state": {"reported": [1]}}), 400,
     "Reported node must be an object", None),
    ("§2.4.7 delta is an invalid node", _j({"state": {"delta": {"a": 1}}}), 400,
     "State contains an invalid node: 'delta'", None),
    ("§2.4.7 unknown node", _j({"state": {"desired": {}, "other": 1}}), 400,
     "State contains an invalid node: 'other'", None),
    ("§2.6 version a string", _j({"state": {}, "version": "1"}), 400, "Invalid version", None),
    ("§2.6 version a float", _j({"state": {}, "version": 1.5}), 400, "Invalid version", None),
    ("§2.6 version a bool", _j({"state": {}, "version": True}), 400, "Invalid version", None),
    ("§2.6 version negative", _j({"state": {}, "version": -1}), 400, "Invalid version", None),
    ("§2.6 clientToken over 64 bytes", _j({"state": {}, "clientToken": "x" * 65}), 400,
     "Invalid clientToken", None),
    ("§2.6 clientToken of 33 two-byte chars", _j({"state": {}, "clientToken": "é" * 33}), 400,
     "Invalid clientToken", None),
    ("§2.6 clientToken not a string", _j({"state": {}, "clientToken": 5}), 400,
     "Invalid clientToken", None),
    ("§2.7 depth 7 in desired", _j({"state": {"desired": deep(7)}}), 400,
     "JSON contains too many levels of nesting; maximum is 6", None),
    ("§2.7 depth counts arrays", _j({"state": {"reported": {"a": [[[[[[1]]]]]]}}}), 400,
     "JSON contains too many levels of nesting; maximum is 6", None),
    ("§2.4.5 null inside an array", _j({"state": {"desired": {"a": [1, None]}}}), 400,
     "Invalid JSON", None),
    ("§2.4.5 null inside an object in an array",
     _j({"state": {"desired": {"a": [{"b": None}]}}, "clientToken": "c"}), 400,
     "Invalid JSON", "c"),
    ("hostile nesting", b"[" * 100000 + b"]" * 100000, 400, "Invalid JSON", None),
]


@pytest.mark.parametrize("section,payload,code,message,token", REJECTIONS,
                         ids=[c[0] for c in REJECTIONS])
def test_rejections(section, payload, code, message, token):
    with pytest.raises(ShadowError) as caught:
        parse_update(payload)
    assert (caught.value.code, caught.value.message, caught.value.client_token) == (
        code, message, token)
    doc = caught.value.payload(123)
    assert doc["code"] == code and doc["message"] == message and doc["timestamp"] == 123
    assert doc.get("clientToken") == token


def test_depth_6_is_allowed_and_configurable():
    """§2.7: desired is level 1; six object levels pass, seven fail; the limit is a setting."""
    assert parse_update(_j({"state": {"desired": deep(6)}})).state == {"desired": deep(6)}
    assert parse_update(_j({"state": {"desired": deep(8)}}), max_depth=8)
    with pytest.raises(ShadowError, match="maximum is 8"):
        parse_update(_j({"state": {"desired": deep(9)}}), max_depth=8)


def test_valid_update_fields():
    request = parse_update(_j({"state": {"desired": {"a": 1}, "reported": None},
                               "clientToken": "x" * 64, "version": 3, "ignored": 1}))
    assert request.state == {"desired": {"a": 1}, "reported": None}
    assert request.client_token == "x" * 64
    assert request.version == 3


def test_state_null_clears():
    """§2.4.4: "state": null is accepted and clears the document."""
    assert parse_update(_j({"state": None})).state is None


@pytest.mark.parametrize("payload,token", [
    (b"", None),
    (b"   ", None),
    (b"ignored content", None),
    (b"[1]", None),
    (_j({"clientToken": "abc"}), "abc"),
    (_j({}), None),
])
def test_get_delete_tokens(payload, token):
    """§2.2: get/delete accept an empty or a JSON payload and echo clientToken."""
    assert parse_token(payload) == token


def test_get_delete_token_too_long():
    with pytest.raises(ShadowError, match="Invalid clientToken"):
        parse_token(_j({"clientToken": "y" * 65}))
