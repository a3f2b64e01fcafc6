"""Driving one paho client from the role's own poll loop (paho's external-loop API):
the socket's reads and writes, TLS bytes that poll() cannot see, and paho's
keep-alive housekeeping. Used for the link's connection and the provisioning one."""

from __future__ import annotations

import socket
import ssl
from typing import Optional

import paho.mqtt.client as mqtt


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
        """Ask for writability only while paho has something to write."""
        if self.fd is not None and self.client is not None:
            self.loop.set_writer(self.fd, self._writable if self.client.want_write() else None)

    def _misc(self) -> None:
        client = self.client
        if client is None:
            return
        client.loop_misc()  # keep-alive pings; closes a link that stopped answering
        if self.client is client:
            self.misc_timer = self.loop.call_later(self.misc_interval, self._misc)
