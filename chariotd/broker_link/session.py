"""One MQTT connection to the endpoint: a fresh paho client per attempt, so nothing
of an old connection (queued packets, message ids) leaks into the next one."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from chariotd.broker_link.driver import quiet_writes
from chariotd.certstore import Certificate

ALPN_PORT = 443
ALPN_PROTOCOL = "x-amzn-mqtt-ca"
CONNECT_TIMEOUT = 10.0
# AWS IoT Core accepts 100 unacknowledged QoS 1 publishes per connection.
MAX_INFLIGHT = 100


def tls_context(cacert: str, certificate: Certificate, port: int) -> ssl.SSLContext:
    """Mutual TLS: the server is verified against CACERT, hostname included."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.load_verify_locations(cafile=cacert)
    context.load_cert_chain(str(certificate.cert_path), str(certificate.key_path))
    if port == ALPN_PORT:
        context.set_alpn_protocols([ALPN_PROTOCOL])
    return context


def new_client(client_id: str, cacert: str, certificate: Certificate, port: int,
               last_will=None) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311, clean_session=True)
    client.tls_set_context(tls_context(cacert, certificate, port))
    client.connect_timeout = CONNECT_TIMEOUT
    client.max_inflight_messages_set(MAX_INFLIGHT)
    client.max_queued_messages_set(0)
    quiet_writes(client)  # written by the driver after each pass of the loop
    if last_will is not None:
        topic, payload = last_will
        client.will_set(topic, payload, qos=1, retain=False)
    return client
