"""The link's state machine against a broker that does not answer: the real Link on
the shared fakes (tests/fakes.py: fake loop and clock, fake mailbox, fake paho client;
no network, no sleeping)."""

from __future__ import annotations

import logging
import os
import ssl

import pytest

from chariotd.broker_link import main as link_main
from chariotd.kernel.mqtt.session import CaProblem
from chariotd.ipc.messages import Publish, ShadowRequest
from fakes import DEADLINES, FakeClient, LinkRig


@pytest.fixture
def rig(tmp_path, monkeypatch):
    made = LinkRig(tmp_path, monkeypatch)
    yield made
    made.close()


def test_no_suback_drops_the_connection_counted_and_reconnects(rig, caplog):
    caplog.set_level(logging.INFO)
    rig.link.connect()
    first = rig.client
    rig.read(first.connack())
    assert rig.link.state == link_main.SUBSCRIBING
    rig.loop.advance(DEADLINES.suback - 0.1)
    assert rig.link.state == link_main.SUBSCRIBING
    rig.loop.advance(0.2)
    assert first.socket() is None and rig.link.client is not first  # dropped
    assert rig.link.state == link_main.WAITING
    assert rig.link.failures.charged == 1
    assert "no SUBACK within 5 s" in caplog.text
    rig.loop.advance(1)  # the backoff: 0.5 s (its ceiling: fakes.LinkRig)
    assert len(rig.clients) == 2 and rig.link.state == link_main.CONNECTING


def test_six_brokers_without_suback_rotate_preferred_and_exit_1(rig):
    rig.link.connect()
    for attempt in range(6):
        rig.read(rig.client.connack())  # a CONNACK does not clear the count
        rig.loop.advance(DEADLINES.suback + 0.1)
        assert rig.link.failures.charged == attempt + 1
        rig.reconnect()  # the backoff, whatever it drew
    assert rig.loop.status == 1 and len(rig.clients) == 6
    assert os.readlink(rig.store / "preferred") == "bbbb"


def test_suback_in_time_is_up_and_clears_the_count(rig):
    rig.link.connect()
    client = rig.client
    rig.link.failures.add()
    rig.read(client.connack())
    rig.loop.advance(DEADLINES.suback - 1)
    rig.read(client.suback())
    assert rig.link.state == link_main.UP and rig.link.failures.charged == 0
    assert rig.link_states() == [True]
    rig.loop.advance(DEADLINES.suback * 3)  # the deadline was cancelled
    assert rig.link.state == link_main.UP


def test_refused_shadow_subscription_is_a_counted_failure(rig, caplog):
    rig.link.connect()
    client = rig.client
    rig.read(client.connack())
    rig.read(client.suback(code=0x80))
    assert "subscription to $aws/things/dev1/shadow/get/+ refused" in caplog.text
    assert "refused the subscription to the shadow responses" in caplog.text
    assert rig.link.state == link_main.WAITING and rig.link.failures.charged == 1


def test_a_suback_of_an_old_connection_is_ignored(rig):
    rig.link.connect()
    old = rig.client
    rig.read(old.connack())
    rig.loop.advance(DEADLINES.suback + 0.1)
    new = rig.reconnect()
    rig.read(new.connack())
    old.suback()  # its SUBACK, handed over by the old client (its socket is closed)
    old.inbound.popleft()()
    assert rig.link.state == link_main.SUBSCRIBING


def test_no_puback_drops_the_connection_and_the_watcher_hears_the_link_went_down(
        rig, caplog):
    client = rig.up()
    rig.deliver("msg0", Publish(ids=[1, 2], topics=["t/1", "t/2"],
                                    payloads=[b"a", b"b"], qos=[1, 1], window=2))
    rig.loop.advance(DEADLINES.puback / 2)
    rig.read(client.puback(client.unacked()[0]))  # progress: the wait restarts
    rig.loop.advance(DEADLINES.puback - 1)
    assert rig.link.state == link_main.UP
    rig.loop.advance(2)
    assert client.socket() is None and rig.link.client is not client  # dropped
    assert "no PUBACK for 30 s with 1 publishes unacknowledged" in caplog.text
    assert rig.link_states() == [True, False]
    assert rig.link_states("msg0") == [True, False]


def test_an_unanswered_shadow_request_publish_is_under_the_puback_deadline(rig, caplog):
    client = rig.up()
    rig.deliver("applier", ShadowRequest(thing="dev1", shadow=None, action="get",
                                             payload=b"{}"))
    rig.loop.advance(DEADLINES.puback + 0.1)
    assert client.socket() is None and rig.link.client is not client  # dropped
    assert "no PUBACK for 30 s with 1 publishes unacknowledged" in caplog.text


def test_qos0_and_acknowledged_publishes_hold_no_deadline(rig):
    client = rig.up()
    rig.deliver("msg0", Publish(ids=[1, 2], topics=["t/1", "t/2"],
                                    payloads=[b"a", b"b"], qos=[0, 1], window=2))
    rig.read(client.puback(*client.unacked()))
    rig.loop.advance(DEADLINES.puback * 3)
    assert rig.link.state == link_main.UP


def test_no_connack_is_a_counted_failure(rig, caplog):
    rig.link.connect()
    rig.loop.advance(DEADLINES.connack + 0.1)
    assert rig.clients[0].socket() is None and rig.link.failures.charged == 1
    assert "no CONNACK within 5 s" in caplog.text


def test_a_message_over_128_kib_is_dropped_before_routing(rig, caplog):
    client = rig.up()
    delta = b"$aws/things/dev1/shadow/update/delta"
    rig.mailbox.take()
    rig.read(client.message(delta + b"\x1b[2J", b"x" * 131073))
    assert rig.mailbox.sent == []
    assert ("dropped a message of 131073 bytes on '$aws/things/dev1/shadow/update/delta"
            "\\x1b[2J': more than 131072 bytes") in caplog.text
    rig.read(client.message(delta, b"x" * 131072))
    assert len(rig.mailbox.sent) == 1  # the limit itself goes through


def test_an_oversize_packet_drops_the_connection_uncharged(rig, caplog):
    client = rig.up()
    rig.read(client.lose(refused=(0x30, 60_000_000)))
    assert rig.link.state == link_main.WAITING
    assert "the broker sent a packet of 60000000 bytes (type 0x30)" in caplog.text
    assert rig.link.failures.charged == 0


def test_a_ca_problem_never_rotates_preferred(tmp_path, monkeypatch, caplog):
    def broken_ca():
        raise CaProblem("--cacert=/ca.pem: the file is empty")

    h = LinkRig(tmp_path, monkeypatch, DEADLINES, make_client=broken_ca)
    h.link.connect()
    h.loop.advance(3600)  # many attempts, with growing backoff
    assert not h.loop.stopping
    assert os.readlink(h.store / "preferred") == "aaaa"
    assert h.link.failures.charged == 0 and h.link.failures.total > 20
    assert "--cacert=/ca.pem: the file is empty; retrying in" in caplog.text
    assert "(not counted against the certificate)" in caplog.text


def refusing_rig(tmp_path, monkeypatch, error):
    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(FakeClient, "connect", refuse)
    return LinkRig(tmp_path, monkeypatch, DEADLINES)


def test_a_server_certificate_that_does_not_verify_never_rotates_preferred(
        tmp_path, monkeypatch):
    h = refusing_rig(tmp_path, monkeypatch,
                     ssl.SSLCertVerificationError(1, "certificate verify failed"))
    h.link.connect()
    h.loop.advance(3600)
    assert not h.loop.stopping and os.readlink(h.store / "preferred") == "aaaa"
    h.close()


def test_a_refused_client_certificate_still_rotates(tmp_path, monkeypatch):
    h = refusing_rig(tmp_path, monkeypatch,
                     ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca"))
    h.link.connect()
    h.loop.advance(3600)
    assert h.loop.status == 1 and os.readlink(h.store / "preferred") == "bbbb"
    h.close()
