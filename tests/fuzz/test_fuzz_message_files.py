"""Fuzz: message files, letterheads and topic checks. A hostile file is refused with
BadMessage (it goes to failed/ with that reason) and never anything else; what is
accepted is a publish frame the link takes as it is."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chariotd.ipc.messages import Publish, decode, encode, validate
from chariotd.kernel.topics import BadTopic, check_not_reserved, check_publish_topic
from chariotd.watchers.letterhead import BadLetterhead, merge, parse_letterhead
from chariotd.watchers.message_file import (MAX_PAYLOAD, BadMessage, build_message,
                                            full_topic, parse_message, peek_priority,
                                            read_document)

from fuzz_values import dumps, fuzz_settings, hostile_bytes, json_values, text

MESSAGE_KEYS = ("topic", "payload", "qos", "compress", "priority", "priority_slot")
topics = st.one_of(text, st.sampled_from(["a/b", "$aws/rules/r/x", "$aws/things/t/shadow/update",
                                          "$SYS/x", "a/+/b", "#", "x" * 257, "a/" * 8]))


def check_accepted(message, allow_reserved: bool) -> None:
    """What parse_message returns is publishable as it is."""
    check_publish_topic(message.topic)
    if not allow_reserved:
        check_not_reserved(message.topic)
    assert type(message.qos) is int and message.qos in (0, 1)
    assert isinstance(message.payload, bytes) and len(message.payload) <= MAX_PAYLOAD
    frame = Publish(ids=[1], topics=[message.topic], payloads=[message.payload],
                    qos=[message.qos], window=10)
    validate(frame)  # what Mailbox.send does: a bad frame there would crash the watcher
    assert decode(encode(frame, "msg0"))[1] == frame


@fuzz_settings(400)
@given(hostile_bytes(MESSAGE_KEYS), st.sampled_from(["", "dev/1/", "$aws/rules/r/"]),
       st.sampled_from(["", "/up", "/#"]), st.booleans())
def test_message_files(data, prefix, suffix, allow_reserved):
    try:
        message = parse_message(data, prefix, suffix, allow_reserved)
    except BadMessage:
        pass
    else:
        check_accepted(message, allow_reserved)
    peek_priority(data)  # never raises: a malformed file is refused later


@fuzz_settings(300)
@given(st.fixed_dictionaries({"topic": topics, "payload": json_values},
                             optional={"qos": json_values, "compress": json_values,
                                       "priority": json_values,
                                       "priority_slot": json_values}),
       st.booleans())
def test_message_documents_with_every_key(document, allow_reserved):
    try:
        message = parse_message(dumps(document), allow_reserved=allow_reserved)
    except BadMessage:
        return
    check_accepted(message, allow_reserved)


@fuzz_settings(300)
@given(hostile_bytes(MESSAGE_KEYS), st.fixed_dictionaries(
    {"topic": topics, "payload": json_values}, optional={"qos": json_values}))
def test_letterheads(letterhead_bytes, document):
    try:
        letterhead = parse_letterhead(letterhead_bytes)
    except BadLetterhead:
        return
    assert "priority" not in letterhead and "priority_slot" not in letterhead
    try:
        merged = merge(letterhead, read_document(dumps(document)))
        message = build_message(merged, full_topic(merged))
    except BadMessage:
        return
    check_accepted(message, False)


@fuzz_settings(500)
@given(st.one_of(text, topics, st.text(max_size=300)), st.booleans())
def test_topics(topic, reserved_check):
    try:
        checked = check_publish_topic(topic)
        if reserved_check:
            check_not_reserved(checked)
    except BadTopic:
        return
    assert checked == topic and topic and "+" not in topic and "#" not in topic
    assert "\0" not in topic
    topic.encode("utf-8")
    if reserved_check:
        assert not topic.startswith("$") or topic.startswith("$aws/rules/")


def test_reserved_topics_need_the_option():
    document = b'{"topic": "$aws/things/dev1/shadow/update", "payload": {"state": {}}}'
    try:
        parse_message(document)
    except BadMessage as error:
        assert "reserved" in str(error) and "message-reserved-topics=allow" in str(error)
    else:
        raise AssertionError("a shadow update topic was accepted by default")
    assert parse_message(document, allow_reserved=True).topic == "$aws/things/dev1/shadow/update"
    assert parse_message(b'{"topic": "$aws/rules/r/a", "payload": 1}').topic == "$aws/rules/r/a"
    for topic in ("$SYS/broker", "$aws/things/dev1/tunnels/notify"):
        try:
            parse_message(dumps({"topic": topic, "payload": 1}))
        except BadMessage:
            continue
        raise AssertionError(f"{topic} was accepted by default")
    # the prefix counts: a directory whose prefix makes every topic reserved
    try:
        parse_message(b'{"topic": "update", "payload": 1}', "$aws/things/dev1/shadow/")
    except BadMessage:
        pass
    else:
        raise AssertionError("a reserved prefix was accepted by default")


def test_crashes_found_by_fuzzing_are_refused_cleanly():
    # qos 1.0 used to reach the link's frame check and crash the watcher
    assert parse_message(b'{"topic": "t", "payload": 1, "qos": 1.0}').qos == 1
    for data in (b'{"topic": "t", "payload": ' + b"1" * 5000 + b"}",  # int digits limit
                 b'{"topic": "t", "payload": ' + b"[" * 100000 + b"}",
                 b'{"topic": "t", "payload": 1, "qos": ' + b"[" * 990 + b"]" * 990 + b"}",
                 b'{"topic": "t", "payload": 1, "qos": 0.5}'):
        try:
            parse_message(data)
        except BadMessage:
            continue
        raise AssertionError(data[:60])
