"""Fleet provisioning without a broker (IOT_CORE.md §3)."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from chariotd.sim import pki
from chariotd.sim.provisioning import Provisioning, acl_entries, parse_provisioning_topic
from chariotd.sim.store import Store
from chariotd.sim.templates import Template, TemplateError, load_templates, write_default

CREATE = "$aws/certificates/create/json"
CSR = "$aws/certificates/create-from-csr/json"


def register_topic(template="chariotd-sim"):
    return f"$aws/provisioning-templates/{template}/provision/json"


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return pki.CA.load_or_create(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def prov(ca, tmp_path):
    write_default(tmp_path)
    registered = []
    service = Provisioning(ca, Store(tmp_path), lambda: load_templates(tmp_path),
                           registered.append)
    service.registered = registered
    return service


def answer(responses):
    assert len(responses) == 1
    topic, doc = responses[0]
    return topic.rsplit("/", 1)[-1], doc


def make_csr():
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
           .sign(key, hashes.SHA256()))
    return key, csr.public_bytes(Encoding.PEM).decode()


def test_topics():
    assert parse_provisioning_topic(CREATE).op == "create"
    assert parse_provisioning_topic(CSR).op == "create-from-csr"
    request = parse_provisioning_topic(register_topic("t1"))
    assert (request.op, request.template, request.fmt) == ("register", "t1", "json")
    assert parse_provisioning_topic(CREATE + "/accepted") is None
    assert parse_provisioning_topic("$aws/things/x/shadow/get") is None


def test_create_keys_and_register(prov, ca):
    """§3: CreateKeysAndCertificate gives an RSA-2048 key, a cert from the sim CA, a token."""
    kind, created = answer(prov.handle(CREATE, b"{}", 100))
    assert kind == "accepted"
    assert set(created) == {"certificateId", "certificatePem", "privateKey",
                            "certificateOwnershipToken"}
    cert = x509.load_pem_x509_certificate(created["certificatePem"].encode())
    assert cert.public_key().key_size == 2048
    assert cert.issuer == ca.cert.subject
    assert len(created["certificateId"]) == 64
    assert created["certificateId"] == pki.certificate_id(created["certificatePem"].encode())
    record = prov.store.load_certificate(created["certificateId"])
    assert record["status"] == "PENDING_ACTIVATION"

    kind, registered = answer(prov.handle(register_topic(), json.dumps({
        "certificateOwnershipToken": created["certificateOwnershipToken"],
        "parameters": {"SerialNumber": "42"}}).encode(), 200))
    assert kind == "accepted"
    assert registered == {"thingName": "sim-42",
                          "deviceConfiguration": {"serial": "42", "greeting": "hello"}}
    record = prov.store.load_certificate(created["certificateId"])
    assert (record["status"], record["thingName"]) == ("ACTIVE", "sim-42")
    assert prov.registered[0]["certificateId"] == created["certificateId"]
    assert f"user {record['commonName']}\ntopic write $aws/things/sim-42/shadow/get\n" in \
        acl_entries(prov.store)
    assert prov.store.load_thing("sim-42")["certificates"] == [created["certificateId"]]


def test_create_from_csr_keeps_the_key_on_the_device(prov):
    """§3 / EXTENSIONS G: the certificate certifies the CSR's public key; no key is sent."""
    key, csr = make_csr()
    kind, created = answer(prov.handle(CSR, json.dumps(
        {"certificateSigningRequest": csr}).encode(), 1))
    assert kind == "accepted"
    assert "privateKey" not in created
    cert = x509.load_pem_x509_certificate(created["certificatePem"].encode())
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


@pytest.mark.parametrize("payload,code,message", [
    (b"", "InvalidCertificateSigningRequest", "Certificate signing request cannot be empty."),
    (b"{}", "InvalidCertificateSigningRequest", "Certificate signing request cannot be empty."),
    (json.dumps({"certificateSigningRequest": "garbage"}).encode(),
     "InvalidCertificateSigningRequest", "Certificate signing request is not valid."),
    (b"not json", "InvalidPayload", "Payload is not valid JSON."),
    (b"[1]", "InvalidPayload", "Payload must be a JSON object."),
])
def test_bad_csr_requests(prov, payload, code, message):
    kind, doc = answer(prov.handle(CSR, payload, 1))
    assert kind == "rejected"
    assert doc == {"statusCode": 400, "errorCode": code, "errorMessage": message}


def _token(prov, now=0):
    return answer(prov.handle(CREATE, b"", now))[1]["certificateOwnershipToken"]


@pytest.mark.parametrize("body,template,status,code,message", [
    ({"parameters": {"SerialNumber": "1"}}, "chariotd-sim", 400,
     "InvalidCertificateOwnershipToken", "Certificate ownership token cannot be empty."),
    ({"certificateOwnershipToken": "forged", "parameters": {"SerialNumber": "1"}},
     "chariotd-sim", 400, "InvalidCertificateOwnershipToken",
     "Certificate ownership token is not valid."),
    ({"certificateOwnershipToken": "TOKEN", "parameters": {"SerialNumber": "1"}},
     "nope", 404, "ResourceNotFound", "Template nope not found"),
    ({"certificateOwnershipToken": "TOKEN"}, "chariotd-sim", 400, "InvalidParameters",
     "Missing required parameter: SerialNumber"),
    ({"certificateOwnershipToken": "TOKEN", "parameters": {"SerialNumber": 5}},
     "chariotd-sim", 400, "InvalidParameters", "Parameters must be an object of string values"),
    ({"certificateOwnershipToken": "TOKEN", "parameters": {"SerialNumber": "a b"}},
     "chariotd-sim", 400, "InvalidParameters", "Invalid thing name: 'sim-a b'"),
])
def test_register_rejections(prov, body, template, status, code, message):
    """§3: rejections in AWS's {statusCode, errorCode, errorMessage} shape."""
    if body.get("certificateOwnershipToken") == "TOKEN":
        body["certificateOwnershipToken"] = _token(prov)
    kind, doc = answer(prov.handle(register_topic(template), json.dumps(body).encode(), 1))
    assert (kind, doc) == ("rejected", {"statusCode": status, "errorCode": code,
                                        "errorMessage": message})
    assert prov.registered == []


def test_token_expires_after_an_hour(prov):
    """§3: the ownership token expires after 1 hour and the pending certificate is deleted."""
    created = answer(prov.handle(CREATE, b"", 1000))[1]
    body = json.dumps({"certificateOwnershipToken": created["certificateOwnershipToken"],
                       "parameters": {"SerialNumber": "7"}}).encode()
    kind, doc = answer(prov.handle(register_topic(), body, 1000 + 3600))
    assert kind == "rejected"
    assert doc["errorMessage"] == "Certificate ownership token has expired."
    assert prov.store.load_certificate(created["certificateId"]) is None
    kind, _ = answer(prov.handle(register_topic(), body, 1000 + 3601))
    assert kind == "rejected"


def test_token_cannot_register_a_second_thing(prov):
    token = _token(prov)

    def register(serial):
        return answer(prov.handle(register_topic(), json.dumps({
            "certificateOwnershipToken": token,
            "parameters": {"SerialNumber": serial}}).encode(), 5))

    assert register("1")[0] == "accepted"
    assert register("1")[0] == "accepted", "repeating the same registration is harmless"
    kind, doc = register("2")
    assert kind == "rejected" and doc["errorCode"] == "InvalidCertificateOwnershipToken"


def test_cbor_is_dropped(prov):
    assert prov.handle("$aws/certificates/create/cbor", b"", 1) == []


def test_template_options(tmp_path, ca):
    (tmp_path / "templates.json").write_text(json.dumps({"templates": {"t": {
        "parameters": {"Serial": {}, "Site": {"default": "lab"}},
        "thingName": "{Site}-{Serial}",
        "deviceConfiguration": {"site": "{Site}", "n": 3},
        "certificateStatus": "INACTIVE",
        "deny": {"Serial": ["0000"]}}}}))
    prov = Provisioning(ca, Store(tmp_path), lambda: load_templates(tmp_path))

    def register(params):
        return answer(prov.handle(register_topic("t"), json.dumps({
            "certificateOwnershipToken": _token(prov), "parameters": params}).encode(), 1))

    assert register({"Serial": "9"}) == ("accepted", {
        "thingName": "lab-9", "deviceConfiguration": {"site": "lab", "n": "3"}})
    assert register({"Serial": "9", "Site": "home"})[1]["thingName"] == "home-9"
    assert register({"Serial": "0000"}) == ("rejected", {
        "statusCode": 403, "errorCode": "AccessDenied",
        "errorMessage": "Provisioning was denied by the pre-provisioning hook."})
    assert acl_entries(prov.store) == "", "INACTIVE certificates get no topics"


@pytest.mark.parametrize("doc", [
    {"thingName": 5},
    {"thingName": "x", "parameters": 5},
    {"thingName": "x", "deviceConfiguration": {"nested": {"a": 1}}},
    {"thingName": "x", "certificateStatus": "MAYBE"},
])
def test_bad_templates_are_refused(doc):
    with pytest.raises(TemplateError):
        Template.from_json("t", doc)


def test_broken_templates_file_is_a_500_not_a_crash(prov, tmp_path):
    (tmp_path / "templates.json").write_text("{broken")
    kind, doc = answer(prov.handle(register_topic(), json.dumps({
        "certificateOwnershipToken": _token(prov),
        "parameters": {"SerialNumber": "1"}}).encode(), 1))
    assert (kind, doc["statusCode"]) == ("rejected", 500)
