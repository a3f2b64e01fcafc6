"""The --fleetprov configuration file and the provisioning payloads
(chariotd.provisioning.fleetprov)."""

from __future__ import annotations

import json

import pytest

from chariotd.provisioning import fleetprov
from chariotd.provisioning.fleetprov import FleetProv, FleetProvError, Registered

GOOD = {"claimstore": "/config/claim", "template": "my-template",
        "parameters": {"SerialNumber": "1234"}}


def parse(**changes):
    doc = dict(GOOD)
    for key, value in changes.items():
        if value is KeyError:
            doc.pop(key)
        else:
            doc[key] = value
    return fleetprov.parse(json.dumps(doc))


def test_minimal_config():
    config = parse()
    assert config == FleetProv("/config/claim", "my-template", {"SerialNumber": "1234"})
    assert config.csr is False and config.outfile is None and config.notifycmd is None
    assert config.create_topic == "$aws/certificates/create/json"
    assert config.register_topic == "$aws/provisioning-templates/my-template/provision/json"
    assert config.response_filters() == [
        "$aws/certificates/create/json/accepted", "$aws/certificates/create/json/rejected",
        "$aws/provisioning-templates/my-template/provision/json/accepted",
        "$aws/provisioning-templates/my-template/provision/json/rejected"]


def test_full_config_with_csr():
    config = parse(outfile="/config/fp.rc", outformat="SHELL", notifycmd="sv restart x",
                   csr=True, unknown_key="ignored")
    assert (config.outfile, config.outformat, config.notifycmd, config.csr) == (
        "/config/fp.rc", "SHELL", "sv restart x", True)
    assert config.create_topic == "$aws/certificates/create-from-csr/json"
    assert config.response_filters()[0] == "$aws/certificates/create-from-csr/json/accepted"


def test_empty_parameters_are_fine():
    assert parse(parameters={}).parameters == {}


@pytest.mark.parametrize("changes,message", [
    ({"claimstore": KeyError}, "'claimstore' is required"),
    ({"template": KeyError}, "'template' is required"),
    ({"parameters": KeyError}, "'parameters' is required"),
    ({"claimstore": 5}, "'claimstore' must be a non-empty string"),
    ({"claimstore": ""}, "'claimstore' must be a non-empty string"),
    ({"template": ["x"]}, "'template' must be a non-empty string"),
    ({"template": "a/b"}, "is not a template name"),
    ({"template": "t" * 37}, "is not a template name"),
    ({"parameters": ["SerialNumber"]}, "'parameters' must be an object"),
    ({"parameters": {"SerialNumber": 1234}}, "the value of 'SerialNumber' must be a string"),
    ({"outfile": "/x"}, "'outfile' and 'outformat' go together"),
    ({"outformat": "JSON"}, "'outfile' and 'outformat' go together"),
    ({"outfile": "/x", "outformat": "XML"}, "'outformat' 'XML' is not one of JSON, SHELL"),
    ({"outfile": "/x", "outformat": "PLAINTEXT"}, "is not one of JSON, SHELL"),
    ({"outfile": "/x", "outformat": "json"}, "is not one of JSON, SHELL"),
    ({"notifycmd": 3}, "'notifycmd' must be a non-empty string"),
    ({"csr": "yes"}, "'csr' must be true or false"),
    ({"csr": 1}, "'csr' must be true or false"),
])
def test_bad_configs(changes, message):
    with pytest.raises(FleetProvError) as raised:
        parse(**changes)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("text,message", [
    ("", "not valid JSON"),
    ("{", "not valid JSON"),
    ("[1]", "must be a JSON object"),
    ("null", "must be a JSON object"),
])
def test_not_a_config(text, message):
    with pytest.raises(FleetProvError, match=message):
        fleetprov.parse(text)


def test_load(tmp_path):
    path = tmp_path / "fp.json"
    with pytest.raises(FleetProvError, match="cannot read: No such file"):
        fleetprov.load(str(path))
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(FleetProvError, match="not UTF-8"):
        fleetprov.load(str(path))
    path.write_text(json.dumps(GOOD))
    assert fleetprov.load(str(path)).template == "my-template"


# -- payloads ------------------------------------------------------------------------

CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_created_with_and_without_key():
    doc = {"certificateId": "ab" * 32, "certificatePem": CERT, "privateKey": "KEY",
           "certificateOwnershipToken": "TOKEN"}
    created = fleetprov.parse_created(json.dumps(doc).encode(), with_key=True)
    assert (created.certificate_id, created.private_key, created.ownership_token) == (
        "ab" * 32, "KEY", "TOKEN")
    assert "KEY" not in repr(created) and "TOKEN" not in repr(created)
    del doc["privateKey"]
    with pytest.raises(FleetProvError, match="has no privateKey"):
        fleetprov.parse_created(json.dumps(doc).encode(), with_key=True)
    assert fleetprov.parse_created(json.dumps(doc).encode(), with_key=False).private_key is None


@pytest.mark.parametrize("change,message", [
    ({"certificateId": "../../etc"}, "is not a certificate id"),
    ({"certificateId": ""}, "has no certificateId"),
    ({"certificatePem": "hello"}, "is not a PEM certificate"),
    ({"certificateOwnershipToken": None}, "has no certificateOwnershipToken"),
])
def test_bad_created(change, message):
    doc = {"certificateId": "ab" * 32, "certificatePem": CERT, "certificateOwnershipToken": "T"}
    doc.update(change)
    with pytest.raises(FleetProvError, match=message):
        fleetprov.parse_created(json.dumps(doc).encode(), with_key=False)
    with pytest.raises(FleetProvError, match="not JSON"):
        fleetprov.parse_created(b"nope", with_key=False)


def test_register_and_registered():
    assert json.loads(fleetprov.register_payload("T", {"A": "1"})) == {
        "certificateOwnershipToken": "T", "parameters": {"A": "1"}}
    assert fleetprov.parse_registered(
        b'{"thingName":"t1","deviceConfiguration":{"k":"v"}}') == Registered("t1", {"k": "v"})
    assert fleetprov.parse_registered(b'{"thingName":"t1"}') == Registered("t1", {})
    with pytest.raises(FleetProvError, match="no thingName"):
        fleetprov.parse_registered(b'{"deviceConfiguration":{}}')
    with pytest.raises(FleetProvError, match="deviceConfiguration is not an object"):
        fleetprov.parse_registered(b'{"thingName":"t","deviceConfiguration":[]}')


def test_create_payload():
    assert fleetprov.create_payload(None) == b"{}"
    assert json.loads(fleetprov.create_payload("CSR")) == {"certificateSigningRequest": "CSR"}


def test_describe_rejection():
    payload = json.dumps({"statusCode": 400, "errorCode": "InvalidParameters",
                          "errorMessage": "Missing required parameter: SerialNumber"}).encode()
    assert fleetprov.describe_rejection(payload) == \
        "400 InvalidParameters: Missing required parameter: SerialNumber"
    assert fleetprov.describe_rejection(b"junk") == "(the rejection is not JSON)"


def test_outfile_text():
    registered = Registered("thing-1", {"a": "x y"})
    as_json = fleetprov.outfile_text(parse(outfile="/o", outformat="JSON"), registered)
    assert json.loads(as_json) == {"thing": "thing-1", "configuration": {"a": "x y"}}
    as_shell = fleetprov.outfile_text(parse(outfile="/o", outformat="SHELL"), registered)
    assert as_shell == "configuration_a='x y'\nthing='thing-1'\n"
