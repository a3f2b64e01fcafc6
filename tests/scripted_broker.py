"""A hostile broker for tests: just enough MQTT 3.1.1 over TLS to do what Mosquitto
never would (never send a SUBACK, refuse every filter, publish a topic holding a NUL).

    broker = ScriptedBroker(test_pki, suback="never")   # or "refuse", "grant"
    ... chariotd connects to broker.endpoint ...
    broker.publish(b"dev1/in/a\\x00b", b"x")             # to the newest connection
    broker.stop()

It accepts every connection with a CONNACK. SUBACK: "grant" grants QoS 1 for every
filter, "refuse" answers 0x80 for every filter, "never" sends nothing. With ANSWER, a
PINGREQ gets a PINGRESP and a QoS 1 PUBLISH a PUBACK; without, nothing else is ever
answered (a silent broker).
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from typing import List, Optional, Tuple

CONNACK = b"\x20\x02\x00\x00"
PINGRESP = b"\xd0\x00"


def read_packet(sock) -> Tuple[int, bytes]:
    """(first byte, body) of the next MQTT packet on SOCK; EOFError when it closes."""
    def read(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data
    kind = read(1)[0]
    length, shift = 0, 0
    while True:
        byte = read(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return kind, read(length)


def suback(body: bytes, code: int) -> bytes:
    """A SUBACK for the SUBSCRIBE BODY giving CODE to each of its filters."""
    count, offset = 0, 2
    while offset < len(body):
        offset += 2 + struct.unpack(">H", body[offset:offset + 2])[0] + 1
        count += 1
    return bytes([0x90, 2 + count]) + body[:2] + bytes([code]) * count


class ScriptedBroker:
    def __init__(self, test_pki, suback: str = "never", answer: bool = False):
        assert suback in ("never", "refuse", "grant")
        self.suback, self.answer = suback, answer
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(test_pki.server_cert, test_pki.server_key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.subscribed = threading.Event()
        self.stopping = threading.Event()
        self.socks: List[ssl.SSLSocket] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                raw, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._session, args=(raw,), daemon=True).start()

    def _send(self, sock, data: bytes) -> None:
        with self.lock:
            sock.sendall(data)

    def _session(self, raw) -> None:
        try:
            sock = self.context.wrap_socket(raw, server_side=True)
            self.socks.append(sock)
            sock.settimeout(1)
            read_packet(sock)  # CONNECT
            self._send(sock, CONNACK)
            self.connections += 1
            while not self.stopping.is_set():
                try:
                    kind, body = read_packet(sock)
                except socket.timeout:
                    continue
                self._answer(sock, kind, body)
        except (OSError, ssl.SSLError, EOFError):
            pass
        finally:
            raw.close()

    def _answer(self, sock, kind: int, body: bytes) -> None:
        if kind == 0x82 and self.suback != "never":  # SUBSCRIBE
            self._send(sock, suback(body, 0x01 if self.suback == "grant" else 0x80))
            self.subscribed.set()
        elif not self.answer:
            return
        elif kind >> 4 == 12:  # PINGREQ
            self._send(sock, PINGRESP)
        elif kind >> 4 == 3 and (kind >> 1) & 3:  # PUBLISH with QoS 1: its packet id
            topic_length = struct.unpack(">H", body[:2])[0]
            self._send(sock, b"\x40\x02" + body[2 + topic_length:4 + topic_length])

    def publish(self, topic: bytes, payload: bytes, sock: Optional[ssl.SSLSocket] = None) -> None:
        """A QoS 0 PUBLISH of TOPIC (any bytes, NUL included) to the newest connection."""
        body = struct.pack(">H", len(topic)) + topic + payload
        assert len(body) < 128
        self._send(sock or self.socks[-1], bytes([0x30, len(body)]) + body)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()
        for sock in self.socks:
            sock.close()
