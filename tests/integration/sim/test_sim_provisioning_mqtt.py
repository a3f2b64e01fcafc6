"""Fleet provisioning round trips over Mosquitto with a plain paho client (IOT_CORE.md §3)."""

from __future__ import annotations


import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sim_clients import Device, devices, sim  # noqa: F401 (fixtures)

TEMPLATE = "chariotd-sim"
REGISTER = f"$aws/provisioning-templates/{TEMPLATE}/provision/json"


def claim(sim, client_id="claim-client"):
    return Device.from_certstore(sim, sim.claimstore, client_id)


def register(device, token, serial):
    device.subscribe(f"{REGISTER}/accepted", f"{REGISTER}/rejected")
    device.publish(REGISTER, {"certificateOwnershipToken": token,
                              "parameters": {"SerialNumber": serial}})


def use_shadow(sim, certfile, keyfile, thing):
    """Connect with the new certificate and use the thing's shadow; another thing's is refused."""
    device = Device(sim, certfile, keyfile, f"{thing}-client")
    try:
        prefix = f"$aws/things/{thing}/shadow"
        device.subscribe(f"{prefix}/update/accepted", "$aws/things/other/shadow/#")
        device.publish("$aws/things/other/shadow/update", {"state": {"reported": {"x": 1}}})
        device.publish(f"{prefix}/update", {"state": {"reported": {"hello": "cloud"}}})
        assert device.wait_json(f"{prefix}/update/accepted")["version"] == 1
        assert sim.get_shadow(thing)["state"] == {"reported": {"hello": "cloud"}}
        assert sim.get_shadow("other") is None
    finally:
        device.close()


def test_create_keys_register_then_connect(sim, tmp_path):
    device = claim(sim)
    device.subscribe("$aws/certificates/create/json/accepted",
                     "$aws/certificates/create/json/rejected")
    device.publish("$aws/certificates/create/json", {})
    created = device.wait_json("$aws/certificates/create/json/accepted")
    register(device, created["certificateOwnershipToken"], "1001")
    assert device.wait_json(f"{REGISTER}/accepted") == {
        "thingName": "sim-1001", "deviceConfiguration": {"serial": "1001", "greeting": "hello"}}
    device.close()

    certfile, keyfile = tmp_path / "new.crt", tmp_path / "new.key"
    certfile.write_text(created["certificatePem"])
    keyfile.write_text(created["privateKey"])
    use_shadow(sim, certfile, keyfile, "sim-1001")
    assert [t["thingName"] for t in sim.things()] == ["sim-1001"]


def test_create_from_csr_register_then_connect(sim, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "whatever")]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    device = claim(sim)
    topic = "$aws/certificates/create-from-csr/json"
    device.subscribe(f"{topic}/accepted", f"{topic}/rejected")
    device.publish(topic, {"certificateSigningRequest": csr})
    created = device.wait_json(f"{topic}/accepted")
    assert "privateKey" not in created
    register(device, created["certificateOwnershipToken"], "2002")
    assert device.wait_json(f"{REGISTER}/accepted")["thingName"] == "sim-2002"
    device.close()

    certfile, keyfile = tmp_path / "csr.crt", tmp_path / "csr.key"
    certfile.write_text(created["certificatePem"])
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    use_shadow(sim, certfile, keyfile, "sim-2002")


@pytest.mark.parametrize("payload,code", [
    ({"parameters": {"SerialNumber": "1"}}, "InvalidCertificateOwnershipToken"),
    ({"certificateOwnershipToken": "forged", "parameters": {"SerialNumber": "1"}},
     "InvalidCertificateOwnershipToken"),
    ("not json", "InvalidPayload"),
])
def test_bad_register_requests_are_rejected(sim, payload, code):
    device = claim(sim)
    try:
        device.subscribe(f"{REGISTER}/accepted", f"{REGISTER}/rejected")
        device.publish(REGISTER, payload if isinstance(payload, dict) else payload.encode())
        rejected = device.wait_json(f"{REGISTER}/rejected")
        assert rejected["errorCode"] == code and rejected["statusCode"] == 400
        # the service is still there
        device.subscribe("$aws/certificates/create/json/accepted")
        device.publish("$aws/certificates/create/json", b"")
        assert device.wait_json("$aws/certificates/create/json/accepted")["certificateId"]
    finally:
        device.close()


def test_provisioned_thing_survives_restart(sim, tmp_path):
    """The ACL entry of a provisioned certificate is rebuilt from DIR on the next start."""
    from chariotd.sim.simulator import Simulator

    device = claim(sim)
    device.subscribe("$aws/certificates/create/json/accepted")
    device.publish("$aws/certificates/create/json", b"")
    created = device.wait_json("$aws/certificates/create/json/accepted")
    register(device, created["certificateOwnershipToken"], "3003")
    device.wait_json(f"{REGISTER}/accepted")
    device.close()
    sim.stop()
    certfile, keyfile = tmp_path / "n.crt", tmp_path / "n.key"
    certfile.write_text(created["certificatePem"])
    keyfile.write_text(created["privateKey"])
    with Simulator(sim.paths.root, port=None) as again:
        use_shadow(again, certfile, keyfile, "sim-3003")
