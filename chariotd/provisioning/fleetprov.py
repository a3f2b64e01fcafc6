"""Fleet provisioning, the pure parts: the `--fleetprov` configuration file, the
provisioning topics and payloads (IOT_CORE.md section 3), and the outfile text.

    {
      "claimstore": "/config/factory/cert",      certstore of the claim certificate(s)
      "template": "my-provisioning-template",
      "parameters": {"SerialNumber": "1234"},    string values, sent with RegisterThing
      "outfile": "/config/provisioning.json",    optional, with "outformat" (JSON or SHELL)
      "outformat": "JSON",
      "notifycmd": "/usr/sbin/provisioned",      optional, run after provisioning
      "csr": true                                optional: the key is made on the device
    }

No I/O here but `load`, which reads the file; the link does the network.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Dict, Optional

from chariotd import formats
from chariotd.formats import FormatError
from chariotd.formats.json import ENVELOPE_DEPTH, MAX_DEPTH, load as load_json
from chariotd.shadow.values import deeper_than

# AWS: provisioning template names are 1-36 of [0-9A-Za-z_-].
TEMPLATE_RE = re.compile(r"^[0-9A-Za-z_-]{1,36}$")
# The certificate id names a directory in the certstore: AWS gives 64 hex digits.
CERTIFICATE_ID_RE = re.compile(r"^[0-9A-Za-z]{1,128}$")
OUTFORMATS = ("JSON", "SHELL")  # PLAINTEXT cannot hold the result (an object)
MAX_CONFIG = 1 << 20
# A RegisterThing deviceConfiguration (AWS's is flat) goes into the outfile under
# `configuration`, one level down: it nests at most MAX_DEPTH - 1 levels.
MAX_CONFIGURATION_DEPTH = MAX_DEPTH - 1

CREATE = "$aws/certificates/create/json"
CREATE_FROM_CSR = "$aws/certificates/create-from-csr/json"


class FleetProvError(ValueError):
    """A bad configuration file (exit status 2) or a malformed response."""


@dataclass(frozen=True)
class FleetProv:
    claimstore: str
    template: str
    parameters: Dict[str, str] = field(default_factory=dict)
    outfile: Optional[str] = None
    outformat: Optional[str] = None
    notifycmd: Optional[str] = None
    csr: bool = False

    @property
    def create_topic(self) -> str:
        return CREATE_FROM_CSR if self.csr else CREATE

    @property
    def register_topic(self) -> str:
        return f"$aws/provisioning-templates/{self.template}/provision/json"

    def response_filters(self):
        return [f"{topic}/{status}" for topic in (self.create_topic, self.register_topic)
                for status in ("accepted", "rejected")]


def _string(doc: dict, key: str, required: bool) -> Optional[str]:
    value = doc.get(key)
    if value is None and not required:
        return None
    if key not in doc:
        raise FleetProvError(f"{key!r} is required")
    if not isinstance(value, str) or not value:
        raise FleetProvError(f"{key!r} must be a non-empty string")
    return value


def parse(text: str) -> FleetProv:
    """The configuration in TEXT, or FleetProvError saying what is wrong (one line).
    Keys we do not know are ignored, as the original daemon did."""
    try:
        doc = load_json(text)
    except FormatError as error:
        raise FleetProvError(f"not valid JSON: {error}") from None
    if not isinstance(doc, dict):
        raise FleetProvError("must be a JSON object")
    claimstore = _string(doc, "claimstore", True)
    template = _string(doc, "template", True)
    if not TEMPLATE_RE.match(template):
        raise FleetProvError(f"'template' {template!r} is not a template name "
                             "(1-36 of A-Z, a-z, 0-9, _ and -)")
    if "parameters" not in doc:
        raise FleetProvError("'parameters' is required")
    parameters = doc["parameters"]
    if not isinstance(parameters, dict):
        raise FleetProvError("'parameters' must be an object")
    for name, value in parameters.items():
        if not isinstance(value, str):
            raise FleetProvError(f"'parameters': the value of {name!r} must be a string")
    outfile = _string(doc, "outfile", False)
    outformat = _string(doc, "outformat", False)
    if (outfile is None) != (outformat is None):
        raise FleetProvError("'outfile' and 'outformat' go together")
    if outformat is not None and outformat not in OUTFORMATS:
        raise FleetProvError(f"'outformat' {outformat!r} is not one of {', '.join(OUTFORMATS)}")
    notifycmd = _string(doc, "notifycmd", False)
    csr = doc.get("csr", False)
    if not isinstance(csr, bool):
        raise FleetProvError("'csr' must be true or false")
    return FleetProv(claimstore, template, dict(parameters), outfile, outformat, notifycmd,
                     csr)


def load(path: str) -> FleetProv:
    """Read and parse PATH; FleetProvError (one line) when it cannot be used."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG + 1)
    except OSError as error:
        raise FleetProvError(f"cannot read: {error.strerror}") from None
    if len(data) > MAX_CONFIG:
        raise FleetProvError(f"larger than {MAX_CONFIG} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FleetProvError("not UTF-8 text") from None
    return parse(text)


# -- the MQTT API (IOT_CORE.md section 3) ---------------------------------------------

@dataclass(frozen=True)
class Created:
    """CreateKeysAndCertificate / CreateCertificateFromCsr accepted. The key and the
    token are secrets: never logged (repr hides them)."""
    certificate_id: str
    certificate_pem: str
    private_key: Optional[str] = field(default=None, repr=False)
    ownership_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Registered:
    thing: str
    configuration: Dict[str, object]


def _json_object(payload: bytes, what: str) -> dict:
    try:
        doc = load_json(payload, envelope=ENVELOPE_DEPTH)  # a document carrying a value
    except FormatError as error:
        raise FleetProvError(f"{what}: the response is not JSON ({error})") from None
    if not isinstance(doc, dict):
        raise FleetProvError(f"{what}: the response is not a JSON object")
    return doc


def create_payload(csr_pem: Optional[str]) -> bytes:
    if csr_pem is None:
        return b"{}"
    return json.dumps({"certificateSigningRequest": csr_pem}).encode()


def parse_created(payload: bytes, with_key: bool) -> Created:
    what = "CreateKeysAndCertificate" if with_key else "CreateCertificateFromCsr"
    doc = _json_object(payload, what)
    fields = ["certificateId", "certificatePem", "certificateOwnershipToken"] + (
        ["privateKey"] if with_key else [])
    for name in fields:
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise FleetProvError(f"{what}: the response has no {name}")
    if not CERTIFICATE_ID_RE.match(doc["certificateId"]):
        raise FleetProvError(f"{what}: the certificateId is not a certificate id")
    if "-----BEGIN CERTIFICATE-----" not in doc["certificatePem"]:
        raise FleetProvError(f"{what}: certificatePem is not a PEM certificate")
    return Created(doc["certificateId"], doc["certificatePem"], doc.get("privateKey"),
                   doc["certificateOwnershipToken"])


def register_payload(token: str, parameters: Dict[str, str]) -> bytes:
    return json.dumps({"certificateOwnershipToken": token, "parameters": parameters}).encode()


def parse_registered(payload: bytes) -> Registered:
    doc = _json_object(payload, "RegisterThing")
    thing = doc.get("thingName")
    if not isinstance(thing, str) or not thing:
        raise FleetProvError("RegisterThing: the response has no thingName")
    configuration = doc.get("deviceConfiguration", {})
    if not isinstance(configuration, dict):
        raise FleetProvError("RegisterThing: deviceConfiguration is not an object")
    if deeper_than(configuration, MAX_CONFIGURATION_DEPTH):
        # AWS sends a flat map of strings; the outfile writers walk it recursively.
        raise FleetProvError("RegisterThing: deviceConfiguration is nested too deeply")
    return Registered(thing, configuration)


def describe_rejection(payload: bytes) -> str:
    """`statusCode errorCode: errorMessage` of a */rejected payload (or what it was)."""
    try:
        doc = load_json(payload)
    except FormatError:
        return "(the rejection is not JSON)"
    if not isinstance(doc, dict):
        return "(the rejection is not a JSON object)"
    return (f"{doc.get('statusCode', '?')} {doc.get('errorCode', '?')}: "
            f"{doc.get('errorMessage', '')}")


def outfile_text(config: FleetProv, registered: Registered) -> str:
    """The outfile: `thing` and `configuration`, in the configured format
    (FormatError when SHELL cannot hold a configuration key)."""
    value = {"thing": registered.thing, "configuration": registered.configuration}
    return formats.get(config.outformat).stringify(value)
