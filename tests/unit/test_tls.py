"""The link's TLS context: verification on, ALPN x-amzn-mqtt-ca on port 443 only."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from chariotd.kernel.mqtt.session import ALPN_PROTOCOL, tls_context
from chariotd.certstore import Certificate


@pytest.fixture
def device_cert(test_pki, tmp_path):
    cert, key = test_pki.client_files("dev-tls")
    return Certificate("dev-tls", cert, key)


def handshake(test_pki, context):
    """Handshake with a TLS server that speaks ALPN; returns the protocol it chose."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(test_pki.server_cert, test_pki.server_key)
    server.set_alpn_protocols([ALPN_PROTOCOL])
    listener = socket.create_server(("127.0.0.1", 0))
    chosen = []

    def serve():
        conn, _ = listener.accept()
        with server.wrap_socket(conn, server_side=True) as tls:
            chosen.append(tls.selected_alpn_protocol())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname()) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.do_handshake()
    finally:
        thread.join(5)
        listener.close()
    return chosen[0]


def test_alpn_on_port_443(test_pki, device_cert):
    assert handshake(test_pki, tls_context(str(test_pki.cafile), device_cert, 443)) == \
        ALPN_PROTOCOL


def test_no_alpn_on_8883(test_pki, device_cert):
    assert handshake(test_pki, tls_context(str(test_pki.cafile), device_cert, 8883)) is None


def test_verification_cannot_be_off(test_pki, device_cert):
    context = tls_context(str(test_pki.cafile), device_cert, 8883)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
