"""One MQTT connection to the endpoint: a fresh paho client per attempt, so nothing
of an old connection (queued packets, message ids) leaks into the next one.

Also the two checks that protect the link from what it reads:
- `load_ca`: --cacert is read here, at start (exit 2) and for every connection. A
  problem with it is a `CaProblem`, which never counts against the device
  certificate; neither does a server certificate that --cacert does not verify
  (`blames_certificate`).
- `BoundedClient`: an inbound packet longer than MAX_INBOUND_PACKET ends the
  connection as soon as its length is decoded, before its body is read.
"""

from __future__ import annotations

import os
import ssl
import stat

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from chariotd.kernel.mqtt.driver import quiet_writes
from chariotd.kernel.mqtt.proxy import ProxyRefused, bypassed, open_tunnel
from chariotd.certstore import Certificate
from chariotd.config import HttpProxy

ALPN_PORT = 443
ALPN_PROTOCOL = "x-amzn-mqtt-ca"
CONNECT_TIMEOUT = 10.0
# AWS IoT Core accepts 100 unacknowledged QoS 1 publishes per connection.
MAX_INFLIGHT = 100
# AWS IoT Core's largest message payload (IOT_CORE.md section 1); the link drops
# anything larger that a broker sends.
MAX_INBOUND_PAYLOAD = 131072
# The longest PUBLISH that can carry such a payload: topic length (2), the longest
# topic MQTT allows (65535), packet id (2). A longer packet cannot be a message the
# link would take, so it is not read at all: the connection is dropped.
MAX_INBOUND_PACKET = MAX_INBOUND_PAYLOAD + 2 + 65535 + 2
# A CA bundle larger than this is refused (the system bundle is about 220 KB).
MAX_CA_FILE = 1 << 20


class CaProblem(Exception):
    """--cacert cannot be used (its text says why, naming the file)."""


def read_ca(path: str) -> str:
    """The PEM text of the CA file PATH, or CaProblem. Read without blocking (a FIFO
    planted there cannot hang the link) and only from a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as error:
        raise CaProblem(f"--cacert={path}: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CaProblem(f"--cacert={path}: not a regular file")
        if info.st_size > MAX_CA_FILE:
            raise CaProblem(f"--cacert={path}: larger than {MAX_CA_FILE} bytes")
        data = os.read(fd, MAX_CA_FILE + 1)
    except OSError as error:
        raise CaProblem(f"--cacert={path}: {error.strerror}") from None
    finally:
        os.close(fd)
    if not data.strip():
        raise CaProblem(f"--cacert={path}: the file is empty")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise CaProblem(f"--cacert={path}: not PEM (binary content)") from None


def load_ca(context: ssl.SSLContext, path: str) -> None:
    """Make CONTEXT trust the CA certificates of PATH; CaProblem when it cannot."""
    text = read_ca(path)
    try:
        context.load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError) as error:
        detail = getattr(error, "reason", None) or str(error)
        raise CaProblem(f"--cacert={path}: no usable PEM certificate ({detail})") from None


def check_ca(path: str) -> None:
    """At start: CaProblem unless PATH holds at least one PEM CA certificate."""
    load_ca(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), path)


def blames_certificate(error: BaseException) -> bool:
    """False for a connection failure the device certificate cannot have caused: our
    CA file is unusable, or the server's certificate does not verify against it
    (wrong CA, hostname mismatch), or the HTTP proxy did not open the tunnel
    (`ProxyRefused`). Those never rotate `preferred`. Anything else
    (an alert from the server, a refused CONNECT, a network error) may be the
    certificate's doing, and counts as the contract says."""
    return not isinstance(error, (CaProblem, ssl.SSLCertVerificationError, ProxyRefused))


def tls_context(cacert: str, certificate: Certificate, port: int) -> ssl.SSLContext:
    """Mutual TLS: the server is verified against CACERT, hostname included."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    load_ca(context, cacert)
    context.load_cert_chain(str(certificate.cert_path), str(certificate.key_path))
    if port == ALPN_PORT:
        context.set_alpn_protocols([ALPN_PROTOCOL])
    return context


class BoundedClient(mqtt.Client):
    """A paho client that does not read an inbound packet longer than `max_packet`.

    paho reads a whole packet into memory before handling it (`_packet_read`: the
    fixed header, the remaining length, then `_sock_recv(remaining)` until it is all
    in `_in_packet["packet"]`). The first body read of a packet is the earliest point
    where its length is known; a packet too long is refused there, and paho sees a
    lost connection (closes the socket, calls on_disconnect). `refused` then says
    what was refused, for the log line. A paho whose `_in_packet` looks different
    leaves the check out rather than failing (the unit tests pin the layout).

    With `proxy` set (--http-proxy), the TCP connection paho wraps in TLS is an HTTP
    CONNECT tunnel (proxy.py): paho 2.x opens it in `_create_socket_connection`, the
    one place overridden, so TLS, ALPN and the deadlines stay paho's and ours."""

    max_packet = MAX_INBOUND_PACKET

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refused = None  # (packet type, remaining length) of a refused packet
        self.proxy: HttpProxy | None = None

    def _create_socket_connection(self):
        if self.proxy is None or bypassed(self._host, self.proxy.no_proxy):
            return super()._create_socket_connection()
        source = (self._bind_address, self._bind_port)
        return open_tunnel(self.proxy, self._host, self._port, self._connect_timeout,
                           source if source[0] else None)

    def _sock_recv(self, bufsize: int) -> bytes:
        packet = getattr(self, "_in_packet", None)
        if isinstance(packet, dict) and packet.get("have_remaining"):
            length = packet.get("remaining_length", 0)
            if isinstance(length, int) and length > self.max_packet:
                self.refused = (packet.get("command", 0) & 0xF0, length)
                raise ConnectionAbortedError(f"inbound packet of {length} bytes refused")
        return super()._sock_recv(bufsize)


def new_client(client_id: str, cacert: str, certificate: Certificate, port: int,
               last_will=None, proxy: HttpProxy | None = None) -> mqtt.Client:
    """A client ready to connect (through PROXY when given); CaProblem, OSError or
    ssl.SSLError when the CA file or the certificate cannot be loaded."""
    client = BoundedClient(CallbackAPIVersion.VERSION2, client_id=client_id,
                           protocol=mqtt.MQTTv311, clean_session=True)
    client.proxy = proxy
    client.tls_set_context(tls_context(cacert, certificate, port))
    client.connect_timeout = CONNECT_TIMEOUT
    client.max_inflight_messages_set(MAX_INFLIGHT)
    client.max_queued_messages_set(0)
    quiet_writes(client)  # written by the driver after each pass of the loop
    if last_will is not None:
        topic, payload = last_will
        client.will_set(topic, payload, qos=1, retain=False)
    return client
