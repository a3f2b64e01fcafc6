"""The link role in-process (tests/fakes.py: LinkRig): its states, what it tells the
watchers and in which order, acknowledgement batching, shadow requests, and what it
does again on a reconnect. Every broker packet and every IPC message goes through a
pass of the (fake) loop, as in the real process."""

from __future__ import annotations

import pytest

from chariotd.broker_link import main as link_main
from chariotd.ipc.messages import (LinkState, Publish, Published, PublishFailed,
                                   ShadowRequest, ShadowResponse)
from fakes import LinkRig


@pytest.fixture
def rig(tmp_path, monkeypatch):
    made = LinkRig(tmp_path, monkeypatch)
    yield made
    made.close()


def publish(ids, window, qos=1):
    return Publish(ids=list(ids), topics=[f"t/{i}" for i in ids],
                   payloads=[b"m%d" % i for i in ids], qos=[qos] * len(ids), window=window)


def test_states_connecting_subscribing_up_down_and_who_hears_it(rig):
    assert rig.link.state == link_main.WAITING
    rig.link.connect()
    client = rig.client
    assert rig.link.state == link_main.CONNECTING
    assert client.connected_to == ("broker.example", 8883, rig.config.keepalive)
    rig.read(client.connack())
    assert rig.link.state == link_main.SUBSCRIBING
    assert client.subscribed, "subscriptions are made after the CONNACK"
    assert rig.mailbox.sent == []  # nobody hears of a link that cannot receive yet
    rig.read(client.suback())
    assert rig.link.state == link_main.UP
    up = LinkState(up=True, client_id="dev1")
    assert rig.mailbox.take() == [("applier", up), ("msg0", up)]
    rig.read(client.lose())
    assert rig.link.state == link_main.WAITING
    down = LinkState(up=False, client_id="dev1")
    assert rig.mailbox.take() == [("applier", down), ("msg0", down)]


def test_a_refused_connack_is_a_failure_not_a_state_change_the_watchers_hear(rig):
    rig.link.connect()
    rig.read(rig.client.connack(rc=5))  # not authorised
    assert rig.link.state == link_main.WAITING and rig.link.failures.charged == 1
    assert rig.mailbox.sent == []


def test_subscriptions_are_made_again_on_every_reconnect(rig):
    first = rig.up()
    filters = [f for _, batch in first.subscribed for f in batch]
    assert "$aws/things/dev1/shadow/update/delta" in filters
    rig.read(first.lose())
    second = rig.reconnect()
    assert second is not first and rig.link.state == link_main.CONNECTING
    rig.read(second.connack())
    assert [f for _, batch in second.subscribed for f in batch] == filters
    assert rig.link.state == link_main.SUBSCRIBING  # not up before its SUBACKs
    rig.read(second.suback())
    assert rig.link_states() == [True, False, True]


def test_publishes_go_out_in_order_within_the_window(rig):
    client = rig.up()
    rig.deliver("msg0", publish(range(1, 6), window=2))
    assert [p.topic for p in client.written] == ["t/1", "t/2"]
    rig.read(client.puback(client.written[0].mid))
    assert [p.topic for p in client.written] == ["t/1", "t/2", "t/3"]  # the freed slot


def test_acknowledgements_read_in_the_pass_that_loses_the_connection_come_first(rig):
    client = rig.up()
    rig.mailbox.take()
    rig.deliver("msg0", publish(range(1, 7), window=2))  # 2 in flight, 4 waiting: busy
    first, second = client.unacked()
    rig.read(client.puback(first, second).lose())  # one read: two PUBACKs, then EOF
    assert rig.mailbox.sent_to("msg0") == [Published(ids=[1, 2]),
                                           LinkState(up=False, client_id="dev1")]
    assert rig.mailbox.sent_to("msg0", PublishFailed) == []  # the watcher resends the rest


def test_acknowledgements_wait_up_to_20_ms_while_more_than_a_window_waits(rig):
    client = rig.up()
    rig.mailbox.take()
    rig.deliver("msg0", publish(range(1, 9), window=2))  # 2 in flight, 6 waiting
    one, two = client.unacked()
    rig.read(client.puback(one))
    assert rig.mailbox.sent == []  # held: the watcher has plenty waiting at the link
    rig.loop.advance(0.005)
    rig.read(client.puback(two))
    rig.loop.advance(0.0149)
    assert rig.mailbox.sent == []
    rig.loop.advance(0.0001)  # 20 ms after the first acknowledgement
    assert rig.mailbox.take() == [("msg0", Published(ids=[1, 2]))]
    assert len(client.written) == 4  # each freed slot was refilled at once meanwhile


def test_acknowledgements_go_at_the_end_of_the_pass_when_little_waits(rig):
    client = rig.up()
    rig.mailbox.take()
    rig.deliver("msg0", publish(range(1, 4), window=2))  # 2 in flight, 1 waiting
    rig.read(client.puback(client.unacked()[0]))
    assert rig.mailbox.take() == [("msg0", Published(ids=[1]))]


def test_qos0_publishes_are_acknowledged_once_written(rig):
    client = rig.up()
    rig.mailbox.take()
    rig.deliver("msg0", publish([7, 8], window=2, qos=0))
    assert [p.qos for p in client.written] == [0, 0]
    assert rig.mailbox.take() == [("msg0", Published(ids=[7, 8]))]
    assert rig.link.unacked == set()  # no PUBACK owed


def test_a_publish_while_down_fails_uncharged(rig):
    rig.deliver("msg0", publish([1, 2], window=2))
    assert rig.mailbox.take() == [
        ("msg0", PublishFailed(id=1, reason="link is down", charge=False)),
        ("msg0", PublishFailed(id=2, reason="link is down", charge=False))]


@pytest.mark.parametrize("shadow, topic", [
    (None, "$aws/things/dev1/shadow/update"),
    ("cfg", "$aws/things/dev1/shadow/name/cfg/update"),
])
def test_shadow_requests_go_to_their_topic_at_qos_1(rig, shadow, topic):
    client = rig.up()
    rig.deliver("applier", ShadowRequest(thing="dev1", shadow=shadow, action="update",
                                         payload=b'{"state":{}}'))
    [sent] = client.written
    assert (sent.topic, sent.payload, sent.qos) == (topic, b'{"state":{}}', 1)
    assert rig.link.unacked == {sent.mid}  # under the PUBACK deadline


def test_a_shadow_request_while_down_is_dropped(rig):
    rig.link.connect()
    rig.deliver("applier", ShadowRequest(thing="dev1", shadow=None, action="get",
                                         payload=b"{}"))
    assert rig.client.written == [] and rig.client.queued == []


def test_shadow_responses_are_routed_to_the_applier(rig):
    client = rig.up()
    rig.mailbox.take()
    rig.read(client.message("$aws/things/dev1/shadow/get/accepted", b'{"state":{}}')
             .message("$aws/things/other/shadow/get/accepted", b"{}"))
    assert rig.mailbox.take() == [("applier", ShadowResponse(
        thing="dev1", shadow=None, action="get", status="accepted",
        payload=b'{"state":{}}'))]


def test_the_dispatch_table_covers_what_the_other_roles_send(rig):
    from chariotd.ipc.messages import Command, RequestTimeout
    assert set(rig.link.handlers()) == {Command, Publish, RequestTimeout, ShadowRequest}


def test_news_from_a_client_the_link_already_dropped_is_ignored(rig):
    """A late callback of a dropped client (its CONNACK, a PUBACK mid, a message) must
    not move the new connection's state or acknowledge anything of the new one."""
    rig.link.connect()
    old = rig.client
    rig.loop.advance(5.0)  # no CONNACK within the deadline: dropped, counted
    assert rig.link.state == link_main.WAITING
    new = rig.reconnect()
    assert new is not old and rig.link.state == link_main.CONNECTING
    old.connack()
    old.message("$aws/things/dev1/shadow/update/delta", b'{"state":{}}')
    old.puback(1)
    for event in old.inbound:  # the stale client's news, delivered by hand
        event()
    assert rig.link.state == link_main.CONNECTING
    assert rig.mailbox.sent == []
