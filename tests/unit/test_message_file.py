import json

import pytest
from hypothesis import given, strategies as st

from chariotd.kernel.topics import BadTopic, check_publish_topic
from chariotd.watchers.message_file import MAX_PAYLOAD, BadMessage, Message, parse_message


def parse(document):
    return parse_message(json.dumps(document).encode())


def test_object_payload_is_compact_json():
    assert parse({"topic": "a/b", "payload": {"key": "my data", "more": True}}) == Message(
        "a/b", b'{"key":"my data","more":true}', 1)


def test_string_payload_is_sent_as_is_and_qos_0():
    assert parse({"topic": "a", "payload": "é x", "qos": 0}) == Message("a", "é x".encode(), 0)


@pytest.mark.parametrize("data,reason", [
    (b"\xff\xfe", "not UTF-8"),
    (b"{", "not JSON"),
    (b'{"topic": "a", "payload": NaN}', "not JSON"),
    (b"[]", "JSON object"),
    (b'{"payload": 1}', "missing 'topic'"),
    (b'{"topic": "a"}', "missing 'payload'"),
    (b'{"topic": "a", "payload": null}', "payload is null"),
    (b'{"topic": "a", "payload": 1, "qos": 2}', "qos must be 0 or 1"),
    (b'{"topic": "a", "payload": 1, "qos": "1"}', "qos must be 0 or 1"),
    (b'{"topic": "a", "payload": 1, "qos": false}', "qos must be 0 or 1"),
    (b'{"topic": 5, "payload": 1}', "topic must be a string"),
    (b'{"topic": "a", "payload": "\\ud800"}', "lone surrogate"),
    (b'{"topic": "a\\u0000b", "payload": 1}', "NUL"),
    (json.dumps({"topic": "a", "payload": "x" * (MAX_PAYLOAD + 1)}).encode(), "AWS IoT Core allows"),
])
def test_bad_messages(data, reason):
    with pytest.raises(BadMessage, match=reason):
        parse_message(data)


@pytest.mark.parametrize("topic", ["a/+", "#", "a/#", "", "a/b/c/d/e/f/g/h/i", "x" * 257])
def test_bad_topics(topic):
    with pytest.raises(BadTopic):
        check_publish_topic(topic)


def test_topic_limits():
    check_publish_topic("a/b/c/d/e/f/g/h")  # 7 slashes
    check_publish_topic("x" * 256)
    # $aws/rules/<rule>/ does not count toward the limits
    check_publish_topic("$aws/rules/myrule/a/b/c/d/e/f/g/h")


@given(st.binary(max_size=200))
def test_any_bytes_give_a_message_or_a_reason(data):
    try:
        parse_message(data)
    except BadMessage as error:
        assert str(error)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=10)


@given(st.dictionaries(st.sampled_from(["topic", "payload", "qos", "other"]), json_values))
def test_any_json_object_gives_a_message_or_a_reason(document):
    try:
        message = parse(document)
    except BadMessage as error:
        assert str(error)
    else:
        assert message.qos in (0, 1)
        payload = document["payload"]
        if isinstance(payload, str):
            assert message.payload == payload.encode()
        else:
            assert json.loads(message.payload) == payload
