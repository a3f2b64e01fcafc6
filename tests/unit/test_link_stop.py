"""The link's orderly stop: the DISCONNECT is written before the process exits, within
a bound, and the stop is said at info (test_logs.py, test_tree.py: no last will)."""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt

from chariotd.broker_link.main import send_queued


class FakeClient:
    """paho's side of it: loop_write takes AGAIN_FOR calls to write everything; the
    write of the DISCONNECT closes the socket (socket() is then None)."""

    def __init__(self, sock, again_for: int, never: bool = False):
        self.sock = sock
        self.again_for = again_for
        self.never = never
        self.writes = 0

    def socket(self):
        return self.sock

    def loop_write(self):
        self.writes += 1
        if self.never or self.writes <= self.again_for:
            return mqtt.MQTT_ERR_AGAIN
        self.sock = None
        return mqtt.MQTT_ERR_SUCCESS


def test_the_disconnect_is_written_even_when_the_socket_is_full_for_a_while():
    left, right = socket.socketpair()
    with left, right:
        client = FakeClient(left, again_for=3)
        assert send_queued(client, 5.0) is True
        assert client.writes == 4


def test_a_socket_that_never_takes_it_gives_up_within_the_bound():
    left, right = socket.socketpair()
    with left, right:
        now = [0.0]

        def clock():
            now[0] += 0.01
            return now[0]

        client = FakeClient(left, again_for=0, never=True)
        assert send_queued(client, 0.5, clock=clock) is False
        assert client.writes <= 60


def test_a_lost_connection_is_not_a_clean_disconnect():
    left, right = socket.socketpair()
    with left, right:
        client = FakeClient(left, again_for=0)
        client.loop_write = lambda: mqtt.MQTT_ERR_CONN_LOST
        assert send_queued(client, 5.0) is False
