"""Fleet provisioning (IOT_CORE.md §3) held against the official AWS SDK's identity
client, both flows, then the provisioned certificate used with the SDK's shadow client;
and replies forged by a device, which neither SDK client may ever see (issue 15)."""

from __future__ import annotations

import json
import queue

from awscrt import mqtt, mqtt_request_response
from awsiot import ServiceStreamOptions, iotidentity, iotshadow
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chariotd.sim import pki
from sdk_clients import TIMEOUT, mqtt3_connection, mqtt5_client, rr_options
from sim_clients import Device, devices, sim  # noqa: F401 (fixtures)

TEMPLATE = "chariotd-sim"


def provisioned_certstore(tmp_path, sim, certificate_pem: str, private_key: str):
    pki.write_certstore(tmp_path / "provisioned", sim.endpoint,
                        certificate_pem.encode(), private_key.encode())
    return tmp_path / "provisioned"


def register(identity, token: str, serial: str):
    return identity.register_thing(iotidentity.RegisterThingRequest(
        template_name=TEMPLATE, certificate_ownership_token=token,
        parameters={"SerialNumber": serial})).result(TIMEOUT)


def test_create_keys_and_certificate_then_register_thing(sim, tmp_path):
    with mqtt5_client(sim, sim.claimstore) as claim:
        identity = iotidentity.IotIdentityClientV2(claim.client, rr_options())
        created = identity.create_keys_and_certificate(
            iotidentity.CreateKeysAndCertificateRequest()).result(TIMEOUT)
        assert len(created.certificate_id) == 64 and created.private_key
        registered = register(identity, created.certificate_ownership_token, "0001")
        assert registered.thing_name == "sim-0001"
        assert registered.device_configuration == {"serial": "0001", "greeting": "hello"}

    store = provisioned_certstore(tmp_path, sim, created.certificate_pem, created.private_key)
    with mqtt5_client(sim, store) as device:
        shadow = iotshadow.IotShadowClientV2(device.client, rr_options())
        accepted = shadow.update_shadow(iotshadow.UpdateShadowRequest(
            thing_name="sim-0001", state=iotshadow.ShadowState(reported={"up": True}))
        ).result(TIMEOUT)
        assert accepted.version == 1


def test_create_certificate_from_csr_then_register_thing(sim, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "ignored")])).sign(key, hashes.SHA256())
    with mqtt5_client(sim, sim.claimstore) as claim:
        identity = iotidentity.IotIdentityClientV2(claim.client, rr_options())
        created = identity.create_certificate_from_csr(
            iotidentity.CreateCertificateFromCsrRequest(
                certificate_signing_request=csr.public_bytes(
                    serialization.Encoding.PEM).decode())).result(TIMEOUT)
        assert x509.load_pem_x509_certificate(created.certificate_pem.encode()).public_key() \
            .public_numbers() == key.public_key().public_numbers()
        assert register(identity, created.certificate_ownership_token, "0002").thing_name == \
            "sim-0002"
    pem_key = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    store = provisioned_certstore(tmp_path, sim, created.certificate_pem, pem_key)
    with mqtt5_client(sim, store) as device:
        shadow = iotshadow.IotShadowClientV2(device.client, rr_options())
        assert shadow.update_shadow(iotshadow.UpdateShadowRequest(
            thing_name="sim-0002", state=iotshadow.ShadowState(reported={"up": 1}))
        ).result(TIMEOUT).version == 1


def test_a_device_cannot_forge_a_shadow_delta(sim, devices):
    """A second connection with dev1's certificate publishes a made-up delta: the broker
    refuses it (PUBACK 0x87) and the SDK's delta stream sees only the service's."""
    with mqtt5_client(sim, sim.device("dev1")) as device:
        shadow = iotshadow.IotShadowClientV2(device.client, rr_options())
        deltas: "queue.Queue[iotshadow.ShadowDeltaUpdatedEvent]" = queue.Queue()
        subscribed: "queue.Queue[object]" = queue.Queue()
        stream = shadow.create_shadow_delta_updated_stream(  # kept: unreferenced, it closes
            iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name="dev1"),
            ServiceStreamOptions(incoming_event_listener=deltas.put,
                                 subscription_status_listener=subscribed.put))
        stream.open()
        assert subscribed.get(timeout=TIMEOUT).type == \
            mqtt_request_response.SubscriptionStatusEventType.SUBSCRIPTION_ESTABLISHED

        forger = devices("dev1")
        for topic in ("$aws/things/dev1/shadow/update/delta",
                      "$aws/things/dev1/shadow/update/accepted",
                      "$aws/things/dev1/shadow/get/accepted"):
            info = forger.publish(topic, {"state": {"evil": 1}, "version": 424242,
                                          "timestamp": 1})
            assert forger.puback(info) == "Not authorized", topic

        sim.set_desired("dev1", None, {"led": "on"})
        delta = deltas.get(timeout=TIMEOUT)
        assert (delta.state, delta.version) == ({"led": "on"}, 1)
        assert deltas.empty()


def test_a_claim_client_cannot_forge_a_certificate(sim, devices):
    """A second claim connection publishes a made-up certificate on
    $aws/certificates/create/json/accepted: refused; the SDK client subscribed there
    gets only the service's answer to its own request."""
    forger = Device.from_certstore(sim, sim.claimstore, "forger")
    try:
        with mqtt3_connection(sim, sim.claimstore) as connection:
            identity = iotidentity.IotIdentityClient(connection)
            answers: "queue.Queue[object]" = queue.Queue()
            for subscribe in (identity.subscribe_to_create_keys_and_certificate_accepted,
                              identity.subscribe_to_create_keys_and_certificate_rejected):
                future, _ = subscribe(iotidentity.CreateKeysAndCertificateSubscriptionRequest(),
                                      mqtt.QoS.AT_LEAST_ONCE, answers.put)
                future.result(TIMEOUT)

            forged = {"certificateId": "f" * 64, "certificatePem": "forged",
                      "privateKey": "forged", "certificateOwnershipToken": "forged"}
            for topic in ("$aws/certificates/create/json/accepted",
                          "$aws/certificates/create-from-csr/json/accepted",
                          f"$aws/provisioning-templates/{TEMPLATE}/provision/json/accepted"):
                assert forger.puback(forger.publish(topic, json.dumps(forged))) == \
                    "Not authorized", topic

            identity.publish_create_keys_and_certificate(
                iotidentity.CreateKeysAndCertificateRequest(),
                mqtt.QoS.AT_LEAST_ONCE).result(TIMEOUT)
            answer = answers.get(timeout=TIMEOUT)
            assert isinstance(answer, iotidentity.CreateKeysAndCertificateResponse)
            assert answer.certificate_id != forged["certificateId"]
            assert sim.store.load_certificate(answer.certificate_id) is not None
            assert answers.empty()
    finally:
        forger.close()
