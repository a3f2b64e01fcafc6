"""session.py: the inbound packet bound inside paho's read path, and --cacert."""

from __future__ import annotations

import os
import socket
import struct

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chariotd.kernel.mqtt.session import (
    MAX_INBOUND_PACKET, BoundedClient, CaProblem, blames_certificate, check_ca)
from chariotd.sim import pki


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: bytes, payload: bytes) -> bytes:
    body = struct.pack("!H", len(topic)) + topic + payload  # QoS 0: no packet id
    return bytes([mqtt.PUBLISH]) + remaining_length(len(body)) + body


@pytest.fixture
def client():
    made = BoundedClient(CallbackAPIVersion.VERSION2, client_id="t")
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    made._sock = ours  # as paho holds it once connected (the layout this pins)
    made.received = []
    made.on_message = lambda c, u, message: made.received.append(message)
    yield made, broker
    ours.close()
    broker.close()


def test_a_packet_longer_than_the_bound_is_refused_before_its_body_is_read(client):
    made, broker = client
    length = 60_000_000
    broker.sendall(bytes([mqtt.PUBLISH]) + remaining_length(length) + b"\0" * 65536)
    rc = made.loop_read()
    assert rc == mqtt.MQTT_ERR_CONN_LOST
    assert made.refused == (mqtt.PUBLISH, length)
    assert made.received == []
    assert len(made._in_packet["packet"]) == 0  # not one byte of the body was kept


def test_a_packet_within_the_bound_is_read_whole(client):
    made, broker = client
    payload = b"x" * 131073  # over AWS's payload limit: refused later, by the link
    packet = publish_packet(b"a/b", payload)
    assert len(packet) < MAX_INBOUND_PACKET
    broker.sendall(packet)
    while not made.received:
        assert made.loop_read() == mqtt.MQTT_ERR_SUCCESS
    assert made.received[0].payload == payload and made.refused is None


def test_the_bound_is_the_largest_publish_of_a_128_kib_payload():
    assert MAX_INBOUND_PACKET == 131072 + 2 + 65535 + 2


@pytest.mark.parametrize("content, expected", [
    (b"", "the file is empty"),
    (b"\n  \n", "the file is empty"),
    (b"not a certificate\n", "no usable PEM certificate"),
    (b"\x30\x82\x01\x0a\xff", "not PEM (binary content)"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
     "no usable PEM certificate"),
])
def test_a_broken_ca_file_is_a_ca_problem_naming_it(tmp_path, content, expected):
    path = tmp_path / "ca.pem"
    path.write_bytes(content)
    with pytest.raises(CaProblem) as error:
        check_ca(str(path))
    assert str(error.value).startswith(f"--cacert={path}: {expected}")


def test_missing_directory_fifo_and_huge_ca_files(tmp_path):
    cases = {tmp_path / "missing": "No such file or directory",
             tmp_path: "not a regular file"}
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases[fifo] = "not a regular file"  # and the open does not block
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"x" * (2 << 20))
    cases[huge] = "larger than"
    for path, expected in cases.items():
        with pytest.raises(CaProblem, match=f"^--cacert={path}: {expected}"):
            check_ca(str(path))


def test_a_good_ca_file_passes(tmp_path):
    ca = pki.CA.load_or_create(tmp_path / "pki")
    check_ca(str(ca.cert_path))


def test_what_blames_the_certificate():
    import ssl
    assert not blames_certificate(CaProblem("x"))
    assert not blames_certificate(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    assert blames_certificate(ssl.SSLError(1, "tlsv1 alert unknown ca"))
    assert blames_certificate(ConnectionRefusedError(111, "Connection refused"))
