"""aws/defender_topics: the report and reply topics, and reading a reply from the cloud
(hostile: anything may arrive)."""

from __future__ import annotations

from hypothesis import given, strategies as st

from chariotd.aws.defender_topics import (MAX_CODE, MAX_MESSAGE, Reply, parse_reply,
                                          parse_reply_topic, reply_topics, report_topic)
from chariotd.formats import FormatError

THINGS = st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True)


@given(THINGS)
def test_reply_topics_read_back_as_the_thing_and_the_status(thing):
    accepted, rejected = reply_topics(thing)
    assert accepted == report_topic(thing) + "/accepted"
    assert parse_reply_topic(accepted) == (thing, True)
    assert parse_reply_topic(rejected) == (thing, False)


def test_other_topics_are_not_replies():
    for topic in ("$aws/things/t/defender/metrics/json", "$aws/things/t/defender/metrics/"
                  "cbor/accepted", "$aws/things//defender/metrics/json/accepted",
                  "$aws/things/a/b/defender/metrics/json/accepted", "x/accepted", ""):
        assert parse_reply_topic(topic) is None


def test_a_rejection_names_its_code_and_message():
    reply = parse_reply(False, b'{"thingName":"t","reportId":5,"status":"REJECTED",'
                               b'"statusDetails":{"ErrorCode":"Throttled",'
                               b'"ErrorMessage":"slow down"},"timestamp":1}')
    assert reply == Reply(False, 5, "Throttled", "slow down")


@given(st.binary(max_size=300))
def test_any_bytes_give_a_reply_or_a_format_error(payload):
    try:
        reply = parse_reply(True, payload)
    except FormatError:
        return
    assert reply.report_id is None or reply.report_id > 0
    assert len(reply.code) <= MAX_CODE + 3 and len(reply.message) <= MAX_MESSAGE + 3


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=300),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@given(st.dictionaries(st.sampled_from(["reportId", "statusDetails", "status"]), JSON),
       st.dictionaries(st.sampled_from(["ErrorCode", "ErrorMessage"]), JSON))
def test_any_object_gives_typed_short_fields(doc, details):
    import json
    if details:
        doc["statusDetails"] = details
    reply = parse_reply(False, json.dumps(doc).encode())
    assert reply.report_id is None or (type(reply.report_id) is int and reply.report_id > 0)
    assert isinstance(reply.code, str) and len(reply.code) <= MAX_CODE + 3
    assert isinstance(reply.message, str) and len(reply.message) <= MAX_MESSAGE + 3
