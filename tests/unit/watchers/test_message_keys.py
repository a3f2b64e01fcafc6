"""Message files beyond topic/payload/qos: priority fields, prefix/suffix, compress;
letterhead parsing, merging and the generator's environment."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from hypothesis import given, strategies as st

from chariotd.watchers.compression import UnknownCompression, compress
from chariotd.watchers.letterhead import (
    BadLetterhead, generator_environment, merge, parse_letterhead)
from chariotd.watchers.message_file import (
    MAX_PAYLOAD, BadMessage, build_message, full_topic, parse_message, peek_priority,
    read_document)


def data(**document):
    return json.dumps(document).encode()


# -- priority fields ----------------------------------------------------------------------

@pytest.mark.parametrize("document,expected", [
    ({"topic": "t", "payload": 1}, (None, None)),
    ({"topic": "t", "payload": 1, "priority": 2}, (2, None)),
    ({"topic": "t", "payload": 1, "priority": -1.5}, (-1.5, None)),
    ({"topic": "t", "payload": 1, "priority_slot": "xyz"}, (None, "xyz")),
    ({"topic": "t", "payload": 1, "priority_slot": 7, "priority": 3}, (3, 7)),
    ({"topic": "t", "payload": 1, "priority": None, "priority_slot": None}, (None, None)),
    ({"topic": "t", "payload": {"priority": 1}}, (None, None)),  # only the top level counts
])
def test_peek_priority(document, expected):
    assert peek_priority(json.dumps(document).encode()) == expected


def test_peek_priority_sees_escaped_keys_and_ignores_malformed_files():
    assert peek_priority(b'{"topic":"t","payload":1,"\\u0070riority":4}') == (4, None)
    assert peek_priority(b'{"priority": 1') == (None, None)           # refused at publish
    assert peek_priority(data(topic="t", payload=1, priority="high")) == (None, None)


@pytest.mark.parametrize("document,reason", [
    ({"topic": "t", "payload": 1, "priority": "high"}, "priority must be a number"),
    ({"topic": "t", "payload": 1, "priority": True}, "priority must be a number"),
    ({"topic": "t", "payload": 1, "priority_slot": [1]}, "priority_slot must be a string"),
    ({"topic": "t", "payload": 1, "priority_slot": False}, "priority_slot must be a string"),
])
def test_bad_priority_fields_are_refused_with_a_reason(document, reason):
    with pytest.raises(BadMessage, match=reason):
        read_document(json.dumps(document).encode())


# -- topic prefix and suffix --------------------------------------------------------------

def test_prefix_and_suffix_wrap_the_topic_and_the_whole_is_checked():
    assert parse_message(data(topic="x", payload=1), "dev/1/", "/up").topic == "dev/1/x/up"
    with pytest.raises(BadMessage, match="levels"):
        parse_message(data(topic="a/b/c/d/e/f", payload=1), "p/q/", "/r")
    with pytest.raises(BadMessage, match="topic is empty"):
        parse_message(data(topic="", payload=1), "p/")
    with pytest.raises(BadMessage, match="wildcard"):
        full_topic({"topic": "x"}, "", "/#")


# -- compression ----------------------------------------------------------------------------

def test_gzip_and_deflate_compress_the_encoded_payload():
    gz = parse_message(data(topic="t", payload={"k": "v" * 100}, compress="gzip"))
    assert gzip.decompress(gz.payload) == b'{"k":"' + b"v" * 100 + b'"}' and not gz.warning
    zz = parse_message(data(topic="t", payload="text " * 50, compress="deflate"))
    assert zlib.decompress(zz.payload) == b"text " * 50


@pytest.mark.parametrize("method", ["zip", "GZIP", 1, {"a": 1}])
def test_unknown_compression_publishes_uncompressed_with_a_warning(method):
    message = parse_message(data(topic="t", payload="plain", compress=method))
    assert message.payload == b"plain"
    assert "published uncompressed" in message.warning


def test_the_size_limit_applies_to_what_is_sent():
    big = "a" * (MAX_PAYLOAD + 10)
    assert len(parse_message(data(topic="t", payload=big, compress="gzip")).payload) < 2000
    with pytest.raises(BadMessage, match="AWS IoT Core allows"):
        parse_message(data(topic="t", payload=big, compress="nope"))


@given(st.binary(max_size=3000), st.sampled_from(["gzip", "deflate"]))
def test_compression_round_trips(payload, method):
    packed = compress(payload, method)
    assert (gzip.decompress(packed) if method == "gzip" else zlib.decompress(packed)) == payload


def test_compress_refuses_unknown_methods():
    with pytest.raises(UnknownCompression, match="'x'|\"x\""):
        compress(b"", "x")


# -- letterheads ----------------------------------------------------------------------------

def test_letterhead_is_a_json_object_without_priority_keys():
    assert parse_letterhead(b'{"qos": 0, "priority": 1, "priority_slot": "s", "a": 2}') == {
        "qos": 0, "a": 2}
    for bad, reason in [(b"[1]", "JSON object"), (b"{", "not JSON"), (b"\xff", "UTF-8")]:
        with pytest.raises(BadLetterhead, match=reason):
            parse_letterhead(bad)


def test_message_is_merged_deeply_on_top_of_the_letterhead():
    letterhead = {"qos": 0, "payload": {"device": "d1", "meta": {"fw": "1.0", "hw": "b"}},
                  "compress": "gzip"}
    message = {"topic": "t", "payload": {"temp": 3, "meta": {"fw": "2.0"}}}
    merged = merge(letterhead, message)
    assert merged == {"qos": 0, "compress": "gzip", "topic": "t",
                      "payload": {"device": "d1", "temp": 3, "meta": {"fw": "2.0", "hw": "b"}}}
    assert letterhead["payload"]["meta"] == {"fw": "1.0", "hw": "b"}  # untouched
    assert merge({"payload": {"a": 1}}, {"payload": "text"})["payload"] == "text"
    message = build_message(merge({"payload": {"a": 1}, "qos": 0}, {"payload": {"b": 2}}), "t")
    assert (message.payload, message.qos) == (b'{"a":1,"b":2}', 0)


def test_generator_environment_describes_the_message():
    env = generator_environment(topic="p/t/s", path="/m/new/f1",
                                mtime_ns=1_712_345_678_901_234_567, priority=None,
                                slot="xyz", was_prioritised=True)
    assert env == {
        "MESSAGE_TOPIC": "p/t/s", "MESSAGE_FILENAME": "/m/new/f1",
        "MESSAGE_TIMESTAMP": "1712345678901.234567", "MESSAGE_TIMESTAMP_S": "1712345678",
        "MESSAGE_PRIORITY": "1", "MESSAGE_PRIORITY_SLOT": "xyz",
        "MESSAGE_WAS_PRIORITISED": "1"}
    env = generator_environment(topic="t", path="/f", mtime_ns=5, priority=2.5,
                                slot=None, was_prioritised=False)
    assert env["MESSAGE_PRIORITY"] == "2.5"
    assert env["MESSAGE_PRIORITY_SLOT"] == env["MESSAGE_WAS_PRIORITISED"] == ""
    assert env["MESSAGE_TIMESTAMP"] == "0.000005"


@pytest.mark.parametrize("slot", ["s\u0000x", "s\ud800", "a\nb", "\x1b[2J", "x" * 257])
def test_a_slot_no_generator_can_be_told_is_the_messages_fault(slot):
    with pytest.raises(BadMessage, match="priority_slot must be at most 256 printable"):
        generator_environment(topic="t", path="/f", mtime_ns=0, priority=None, slot=slot,
                              was_prioritised=False)
    ok = generator_environment(topic="t", path="/f", mtime_ns=0, priority=None,
                               slot="émoji 🙂 slot", was_prioritised=False)
    assert ok["MESSAGE_PRIORITY_SLOT"] == "émoji 🙂 slot"
