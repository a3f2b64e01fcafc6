"""Driving one paho client from the role's own poll loop (paho's external-loop API):
the socket's reads and writes, TLS bytes that poll() cannot see, and paho's
keep-alive housekeeping. Used for the link's connection and the provisioning one.

Writes: paho only queues packets (`quiet_writes`), and `flush()`, after each pass of
the loop, writes everything the pass queued. Publishes queued together go out as one
write (`coalesce`): one TLS record and one TCP segment for a window of messages
instead of one each, which is less work for the device, the network and the broker.
"""

from __future__ import annotations

import socket
import ssl
from collections import deque
from typing import Optional

import paho.mqtt.client as mqtt

# Publishes larger than this are written on their own; a merged write stays below it.
COALESCE_LIMIT = 16384


def quiet_writes(client: mqtt.Client) -> None:
    """Make CLIENT queue its packets instead of writing each at once (paho writes
    inside publish() unless a write callback is registered); `flush` writes them."""
    client.on_socket_register_write = lambda *args: None


def coalesce(client: mqtt.Client) -> None:
    """Merge runs of queued QoS 1 PUBLISH packets not yet begun into one packet, so
    that paho writes them with one send. Writing a QoS 1 publish has no side effect
    in paho (its outcome is the PUBACK), so a merged run behaves as its parts would.
    Anything unexpected in paho's queue (another version's layout) leaves it as is."""
    queue = getattr(client, "_out_packet", None)
    if not isinstance(queue, deque) or len(queue) < 2:
        return
    merged: deque = deque()
    run = None
    try:
        for packet in queue:
            mergeable = (packet["command"] & 0xF0 == mqtt.PUBLISH and packet["qos"] > 0
                         and packet["pos"] == 0 and packet["to_process"] < COALESCE_LIMIT)
            if not mergeable:
                run = None
                merged.append(packet)
            elif run is not None and run["to_process"] + packet["to_process"] <= COALESCE_LIMIT:
                run["packet"] += packet["packet"]
                run["to_process"] += packet["to_process"]
            else:
                run = dict(packet, packet=bytearray(packet["packet"]))
                merged.append(run)
    except (KeyError, TypeError):
        return
    if len(merged) < len(queue):
        queue.clear()
        queue.extend(merged)


class ClientDriver:
    def __init__(self, loop, misc_interval: float):
        self.loop = loop
        self.misc_interval = misc_interval
        self.client: Optional[mqtt.Client] = None
        self.fd: Optional[int] = None
        self.misc_timer = None

    def attach(self, client: mqtt.Client) -> bool:
        """Watch CLIENT's socket (after its connect()); False when it has none."""
        sock = client.socket()
        if sock is None:
            return False
        try:  # small request/response packets: no Nagle delay behind a PUBACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.client = client
        self.fd = sock.fileno()
        self.loop.add_reader(self.fd, self._readable)
        self.misc_timer = self.loop.call_later(self.misc_interval, self._misc)
        return True

    def detach(self) -> None:
        """Stop watching (call it before the socket is closed: on_socket_close)."""
        if self.fd is not None:
            self.loop.forget(self.fd)
            self.fd = None
        if self.misc_timer is not None:
            self.misc_timer.cancel()
            self.misc_timer = None
        self.client = None

    def _readable(self) -> None:
        client = self.client
        if client is None:
            return
        client.loop_read()
        while self.client is client:  # TLS may hold decrypted bytes poll() cannot see
            sock = client.socket()
            if sock is None or not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                break
            client.loop_read()

    def _writable(self) -> None:
        if self.client is not None:
            self.client.loop_write()

    def after_each_pass(self) -> None:
        """Write what this pass queued (merged, see `coalesce`); ask for writability only
        while paho has something it could not write yet."""
        client = self.client
        if self.fd is None or client is None:
            return
        if client.want_write():
            coalesce(client)
            client.loop_write()  # may lose the connection: its callbacks detach us
            if self.client is not client:
                return
        self.loop.set_writer(self.fd, self._writable if client.want_write() else None)

    def _misc(self) -> None:
        client = self.client
        if client is None:
            return
        client.loop_misc()  # keep-alive pings; closes a link that stopped answering
        if self.client is client:
            self.misc_timer = self.loop.call_later(self.misc_interval, self._misc)
