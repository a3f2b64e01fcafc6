"""The link's state machine against a broker that does not answer: a fake paho
client, the real loop on a fake clock (no network, no sleeping)."""

from __future__ import annotations

import logging
import os
import socket
import ssl

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from chariotd import cli
from chariotd.broker_link import main as link_main
from chariotd.kernel.mqtt.deadlines import Deadlines
from chariotd.kernel.mqtt.session import CaProblem
from chariotd.ipc.messages import LinkState, Publish, ShadowRequest
from chariotd.kernel.loop import Loop
from chariotd.kernel.runtime import Role, RoleContext

DEADLINES = Deadlines(connack=5.0, suback=5.0, puback=30.0, request=10.0)


class Info:
    def __init__(self, mid, rc=mqtt.MQTT_ERR_SUCCESS):
        self.mid, self.rc = mid, rc


class FakeClient:
    """What the link uses of a paho client; records what it was asked."""

    def __init__(self):
        self.sock, self.peer = socket.socketpair()
        self.mids = iter(range(1, 1000))
        self.subscribed, self.published = [], []
        self.refused = None

    def connect(self, host, port, keepalive):
        pass

    def socket(self):
        return None if self.sock.fileno() < 0 else self.sock

    def subscribe(self, filters):
        mid = next(self.mids)
        self.subscribed.append((mid, [f for f, _ in filters]))
        return mqtt.MQTT_ERR_SUCCESS, mid

    def publish(self, topic, payload, qos=0):
        mid = next(self.mids)
        self.published.append((mid, topic))
        return Info(mid)

    def want_write(self):
        return False

    def loop_write(self):
        pass

    def loop_misc(self):  # keep-alive: a broker that answers PINGREQ
        pass

    def disconnect(self):
        pass

    def close(self):
        self.sock.close()
        self.peer.close()


class Mailbox:
    def __init__(self):
        self.sent = []

    def send(self, to, message):
        self.sent.append((to, message))


class Harness:
    def __init__(self, tmp_path, monkeypatch, clients, make_client=None):
        self.now = 1000.0
        self.loop = Loop(clock=lambda: self.now)
        store = tmp_path / "certstore"
        for cert_id in ("aaaa", "bbbb"):
            (store / cert_id).mkdir(parents=True)
            for suffix in ("certificate.pem.crt", "private.pem.key"):
                (store / cert_id / f"{cert_id}-{suffix}").write_text("x")
        (store / "endpoint.txt").write_text("broker.example:8883\n")
        os.symlink("aaaa", store / "preferred")
        self.store = store
        config = cli.parse(["--clientid=dev1", "--cacert=/ca.pem", f"--certstore={store}",
                            "--updates=dev1:/nowhere"])
        self.mailbox = Mailbox()
        role = Role("link", "chariotd: link", "link", link_main.run)
        context = RoleContext(role=role, config=config, rundir=str(tmp_path), parent_fd=-1,
                              parent_pid=0, roles=[role, Role("applier", "a", "a", None),
                                     Role("msg0", "m", "m", None)],
                              loop=self.loop, mailbox=self.mailbox)

        def new_client(*args, **kwargs):
            if make_client is not None:
                make_client()
            client = FakeClient()
            clients.append(client)
            return client

        monkeypatch.setattr(link_main, "new_client", new_client)
        self.link = link_main.Link(context, clock=lambda: self.now, deadlines=DEADLINES)

    def advance(self, seconds: float) -> None:
        """Let SECONDS pass, running the timers due on the way, in order."""
        end = self.now + seconds
        while True:
            pending = [when for when, _, timer in self.loop._timers if not timer.cancelled]
            if not pending or min(pending) > end:
                break
            self.now = max(self.now, min(pending))
            self.loop._run_timers()
            if self.loop.stopping:
                return
        self.now = end

    def connack(self, client):
        self.link._on_connect(client, None, None, ReasonCode(mqtt.CONNACK >> 4, identifier=0),
                              None)

    def suback(self, client, mid, code=1):
        filters = dict(client.subscribed)[mid]
        self.link._on_subscribe(client, None, mid,
                                [ReasonCode(mqtt.SUBACK >> 4, identifier=code)] * len(filters),
                                None)

    def link_states(self):
        return [m.up for to, m in self.mailbox.sent if isinstance(m, LinkState)
                and to == "applier"]


@pytest.fixture
def harness(tmp_path, monkeypatch):
    clients = []
    made = Harness(tmp_path, monkeypatch, clients)
    made.clients = clients
    yield made
    for client in clients:
        client.close()


def test_no_suback_drops_the_connection_counted_and_reconnects(harness, caplog):
    caplog.set_level(logging.INFO)
    harness.link.connect()
    first = harness.clients[0]
    harness.connack(first)
    assert harness.link.state == link_main.SUBSCRIBING
    harness.advance(DEADLINES.suback - 0.1)
    assert harness.link.state == link_main.SUBSCRIBING
    harness.advance(0.2)
    # (the state may be CONNECTING again already: CHARIOTD_BACKOFF_BASE shortens waits)
    assert first.socket() is None and harness.link.client is not first  # dropped
    assert harness.link.failures.charged == 1
    assert "no SUBACK within 5 s" in caplog.text
    harness.advance(1)  # the backoff (at most 0.5 s) and the reconnect
    assert len(harness.clients) == 2 and harness.link.state == link_main.CONNECTING


def test_six_brokers_without_suback_rotate_preferred_and_exit_1(harness):
    for attempt in range(6):
        harness.link.connect() if attempt == 0 else None
        client = harness.clients[-1]
        harness.connack(client)  # a CONNACK no longer clears the count: only UP does
        harness.advance(DEADLINES.suback + 0.1)
        if harness.loop.stopping:
            break
        harness.advance(130)  # the backoff, whatever it drew
    assert harness.loop._status == 1
    assert os.readlink(harness.store / "preferred") == "bbbb"


def test_suback_in_time_is_up_and_clears_the_count(harness):
    harness.link.connect()
    client = harness.clients[0]
    harness.link.failures.add()
    harness.connack(client)
    harness.advance(DEADLINES.suback - 1)
    for mid, _ in list(client.subscribed):
        harness.suback(client, mid)
    assert harness.link.state == link_main.UP and harness.link.failures.charged == 0
    assert harness.link_states() == [True]
    harness.advance(DEADLINES.suback * 3)  # the deadline was cancelled
    assert harness.link.state == link_main.UP


def test_refused_shadow_subscription_is_a_counted_failure(harness, caplog):
    harness.link.connect()
    client = harness.clients[0]
    harness.connack(client)
    for mid, _ in list(client.subscribed):
        harness.suback(client, mid, code=0x80)
    assert "subscription to $aws/things/dev1/shadow/get/+ refused" in caplog.text
    assert "refused the subscription to the shadow responses" in caplog.text
    assert harness.link.state == link_main.WAITING and harness.link.failures.charged == 1


def test_a_suback_of_an_old_connection_is_ignored(harness):
    harness.link.connect()
    old = harness.clients[0]
    harness.connack(old)
    harness.advance(DEADLINES.suback + 0.1)
    harness.advance(10)
    new = harness.clients[1]
    harness.connack(new)
    mid = old.subscribed[0][0]
    harness.link._on_subscribe(old, None, mid, [ReasonCode(9, identifier=1)] * 8, None)
    assert harness.link.state == link_main.SUBSCRIBING


def up(harness):
    harness.link.connect()
    client = harness.clients[-1]
    harness.connack(client)
    for mid, _ in list(client.subscribed):
        harness.suback(client, mid)
    assert harness.link.state == link_main.UP
    return client


def test_no_puback_drops_the_connection_and_the_watcher_hears_the_link_went_down(
        harness, caplog):
    client = up(harness)
    harness.link.publish("msg0", Publish(ids=[1, 2], topics=["t/1", "t/2"],
                                         payloads=[b"a", b"b"], qos=[1, 1], window=2))
    harness.advance(DEADLINES.puback / 2)
    mid = client.published[0][0]
    harness.link._on_publish(client, None, mid, None, None)  # progress: the wait restarts
    harness.advance(DEADLINES.puback - 1)
    assert harness.link.state == link_main.UP
    harness.advance(2)
    assert client.socket() is None and harness.link.client is not client  # dropped
    assert "no PUBACK for 30 s with 1 publishes unacknowledged" in caplog.text
    assert harness.link_states() == [True, False]
    assert [m.up for to, m in harness.mailbox.sent
            if to == "msg0" and isinstance(m, LinkState)] == [True, False]


def test_an_unanswered_shadow_request_publish_is_under_the_puback_deadline(harness, caplog):
    client = up(harness)
    harness.link.shadow_request("applier", ShadowRequest(thing="dev1", shadow=None,
                                                         action="get", payload=b"{}"))
    harness.advance(DEADLINES.puback + 0.1)
    assert client.socket() is None and harness.link.client is not client  # dropped
    assert "no PUBACK for 30 s with 1 publishes unacknowledged" in caplog.text


def test_qos0_and_acknowledged_publishes_hold_no_deadline(harness):
    client = up(harness)
    harness.link.publish("msg0", Publish(ids=[1, 2], topics=["t/1", "t/2"],
                                         payloads=[b"a", b"b"], qos=[0, 1], window=2))
    qos1 = client.published[1][0]
    harness.link._on_publish(client, None, qos1, None, None)
    harness.advance(DEADLINES.puback * 3)
    assert harness.link.state == link_main.UP


def test_no_connack_is_a_counted_failure(harness, caplog):
    harness.link.connect()
    harness.advance(DEADLINES.connack + 0.1)
    assert harness.clients[0].socket() is None and harness.link.failures.charged == 1
    assert "no CONNACK within 5 s" in caplog.text


class Message:
    def __init__(self, topic, payload):
        self._topic, self.payload = topic, payload

    @property
    def topic(self):
        return self._topic.decode("utf-8")


def test_a_message_over_128_kib_is_dropped_before_routing(harness, caplog):
    client = up(harness)
    delta = b"$aws/things/dev1/shadow/update/delta"
    harness.mailbox.sent.clear()
    harness.link._on_message(client, None, Message(delta + b"\x1b[2J", b"x" * 131073))
    assert harness.mailbox.sent == []
    assert ("dropped a message of 131073 bytes on '$aws/things/dev1/shadow/update/delta"
            "\\x1b[2J': more than 131072 bytes") in caplog.text
    harness.link._on_message(client, None, Message(delta, b"x" * 131072))
    assert len(harness.mailbox.sent) == 1  # the limit itself goes through


def test_an_oversize_packet_drops_the_connection_uncharged(harness, caplog):
    client = up(harness)
    client.refused = (0x30, 60_000_000)
    harness.link._on_disconnect(client, None, None, ReasonCode(2, identifier=0), None)
    assert harness.link.state == link_main.WAITING
    assert "the broker sent a packet of 60000000 bytes (type 0x30)" in caplog.text
    assert harness.link.failures.charged == 0


def test_a_ca_problem_never_rotates_preferred(tmp_path, monkeypatch, caplog):
    clients = []

    def broken_ca():
        raise CaProblem("--cacert=/ca.pem: the file is empty")

    h = Harness(tmp_path, monkeypatch, clients, make_client=broken_ca)
    h.link.connect()
    h.advance(3600)  # many attempts, with growing backoff
    assert not h.loop.stopping
    assert os.readlink(h.store / "preferred") == "aaaa"
    assert h.link.failures.charged == 0 and h.link.failures.total > 20
    assert "--cacert=/ca.pem: the file is empty; retrying in" in caplog.text
    assert "(not counted against the certificate)" in caplog.text


def test_a_server_certificate_that_does_not_verify_never_rotates_preferred(
        tmp_path, monkeypatch):
    clients = []
    h = Harness(tmp_path, monkeypatch, clients)

    def refuse(*args, **kwargs):
        raise ssl.SSLCertVerificationError(1, "certificate verify failed")

    monkeypatch.setattr(FakeClient, "connect", refuse)
    h.link.connect()
    h.advance(3600)
    assert not h.loop.stopping and os.readlink(h.store / "preferred") == "aaaa"
    for client in clients:
        client.close()


def test_a_refused_client_certificate_still_rotates(tmp_path, monkeypatch):
    clients = []
    h = Harness(tmp_path, monkeypatch, clients)

    def refuse(*args, **kwargs):
        raise ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")

    monkeypatch.setattr(FakeClient, "connect", refuse)
    h.link.connect()
    h.advance(3600)
    assert h.loop._status == 1 and os.readlink(h.store / "preferred") == "bbbb"
    for client in clients:
        client.close()
