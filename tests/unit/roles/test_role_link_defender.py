"""The link with --defender (tests/fakes.py: LinkRig): it subscribes to the answers to
the defender role's reports and hands them to that role, read; a hostile answer is one
log line; the defender's reports go out like any other publish."""

from __future__ import annotations

import logging

import pytest

from chariotd.ipc.messages import DefenderReply, LinkState, Publish, Published
from chariotd.kernel.runtime import DEFENDER
from fakes import LinkRig

ACCEPTED = "$aws/things/dev1/defender/metrics/json/accepted"
REJECTED = "$aws/things/dev1/defender/metrics/json/rejected"


@pytest.fixture
def rig(tmp_path, monkeypatch):
    made = LinkRig(tmp_path, monkeypatch, args=["--defender=dev1"],
                   peers=("applier", DEFENDER))
    yield made
    made.close()


def replies(rig):
    return rig.mailbox.sent_to(DEFENDER, DefenderReply)


def test_subscribes_to_both_reply_topics_and_tells_the_defender_the_link_state(rig):
    client = rig.up()
    filters = [f for _, batch in client.subscribed for f in batch]
    assert ACCEPTED in filters and REJECTED in filters
    assert rig.mailbox.sent_to(DEFENDER, LinkState) == [LinkState(up=True, client_id="dev1")]


def test_replies_reach_the_defender_read(rig):
    client = rig.up()
    rig.read(client.message(ACCEPTED, b'{"thingName":"dev1","reportId":42,'
                                      b'"status":"ACCEPTED","timestamp":1}'))
    rig.read(client.message(REJECTED, b'{"reportId":43,"status":"REJECTED","statusDetails":'
                                      b'{"ErrorCode":"Throttled","ErrorMessage":"too soon"}}'))
    assert replies(rig) == [
        DefenderReply(thing="dev1", accepted=True, report_id=42, code="", message=""),
        DefenderReply(thing="dev1", accepted=False, report_id=43, code="Throttled",
                      message="too soon")]


@pytest.mark.parametrize("payload", [b"{", b"[1]", b"\xff\xfe", b'"x"' * 10, b"1e999"])
def test_a_reply_that_is_not_a_json_object_is_one_log_line(rig, caplog, payload):
    client = rig.up()
    with caplog.at_level(logging.WARNING):
        rig.read(client.message(REJECTED, payload))
    assert replies(rig) == []
    assert "dropped a Defender reply on" in caplog.text


def test_odd_fields_are_emptied_or_cut_never_passed_on(rig):
    client = rig.up()
    rig.read(client.message(REJECTED, b'{"reportId":true,"statusDetails":{"ErrorCode":7,'
                                      b'"ErrorMessage":"' + b"m" * 5000 + b'"}}'))
    rig.read(client.message(ACCEPTED, b'{"reportId":99999999999999999999}'))
    first, second = replies(rig)
    assert first.report_id is None and first.code == "" and len(first.message) < 250
    assert second.report_id is None


def test_another_things_replies_are_not_the_defenders(rig):
    client = rig.up()
    rig.read(client.message("$aws/things/dev2/defender/metrics/json/accepted",
                            b'{"reportId":1}'))
    assert replies(rig) == []


def test_the_defender_publishes_like_a_watcher(rig):
    client = rig.up()
    rig.mailbox.take()
    rig.deliver(DEFENDER, Publish(ids=[1], topics=["$aws/things/dev1/defender/metrics/json"],
                                  payloads=[b"{}"], qos=[1], window=1))
    [publication] = client.written
    assert publication.topic.endswith("/defender/metrics/json") and publication.qos == 1
    rig.read(client.puback(publication.mid))
    assert rig.mailbox.sent_to(DEFENDER, Published) == [Published(ids=[1])]


def test_without_defender_no_reply_topic_is_subscribed(tmp_path, monkeypatch):
    plain = LinkRig(tmp_path, monkeypatch)
    try:
        client = plain.up()
        filters = [f for _, batch in client.subscribed for f in batch]
        assert not any("defender" in f for f in filters)
    finally:
        plain.close()
