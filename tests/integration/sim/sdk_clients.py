"""Connections made with the official AWS IoT Device SDK v2 for Python (`awsiotsdk`), the
simulator's independent check: an MQTT 5 client for the v2 service clients and an MQTT
3.1.1 connection for the v1 ones, both as AWS's samples build them (mTLS from files,
the sim's CA as the trust store, 'localhost', which the server certificate names)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Tuple

from awscrt import mqtt, mqtt_request_response
from awsiot import mqtt5_client_builder, mqtt_connection_builder

TIMEOUT = 10


def cert_files(certstore: Path) -> Tuple[str, str]:
    """(certificate, key) paths of a chariotd certstore."""
    cert_dir = next(p for p in Path(certstore).iterdir() if p.is_dir())
    return (str(cert_dir / f"{cert_dir.name}-certificate.pem.crt"),
            str(cert_dir / f"{cert_dir.name}-private.pem.key"))


def rr_options() -> mqtt_request_response.ClientOptions:
    return mqtt_request_response.ClientOptions(max_request_response_subscriptions=4,
                                               max_streaming_subscriptions=4,
                                               operation_timeout_in_seconds=TIMEOUT)


class Mqtt5:
    """A started awscrt MQTT 5 client; .connack is the CONNACK packet, .stopped tells a
    disconnection by the broker."""

    def __init__(self, sim, cert: str, key: str, client_id: str, **options):
        self.connected: Future = Future()
        self.disconnected = threading.Event()
        self.stopped = threading.Event()
        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint="localhost", port=sim.port, cert_filepath=cert, pri_key_filepath=key,
            ca_filepath=str(sim.cafile), client_id=client_id,
            on_lifecycle_connection_success=self._success,
            on_lifecycle_connection_failure=self._failure,
            on_lifecycle_disconnection=lambda data: self.disconnected.set(),
            on_lifecycle_stopped=lambda data: self.stopped.set(),
            min_reconnect_delay_ms=60_000, **options)
        self.client.start()
        self.connack = self.connected.result(TIMEOUT)

    def _success(self, data):
        if not self.connected.done():
            self.connected.set_result(data.connack_packet)

    def _failure(self, data):
        if not self.connected.done():
            self.connected.set_exception(data.exception)

    def close(self) -> None:
        self.client.stop()
        assert self.stopped.wait(TIMEOUT), "the SDK client did not stop"


@contextmanager
def mqtt5_client(sim, certstore: Path, **options) -> Iterator[Mqtt5]:
    cert, key = cert_files(certstore)
    client = Mqtt5(sim, cert, key, f"sdk5-{uuid.uuid4().hex[:12]}", **options)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def mqtt3_connection(sim, certstore: Path) -> Iterator[mqtt.Connection]:
    """An MQTT 3.1.1 connection, connected (the v1 service clients take one)."""
    cert, key = cert_files(certstore)
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost", port=sim.port, cert_filepath=cert, pri_key_filepath=key,
        ca_filepath=str(sim.cafile), client_id=f"sdk3-{uuid.uuid4().hex[:12]}",
        clean_session=True, keep_alive_secs=30)
    connection.connect().result(TIMEOUT)
    try:
        yield connection
    finally:
        connection.disconnect().result(TIMEOUT)
