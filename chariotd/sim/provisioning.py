"""Fleet provisioning by claim (IOT_CORE.md §3): certificates signed by the sim's CA.

``Provisioning.handle(topic, payload, now)`` answers one request with the (topic,
payload) pairs to publish. Issued certificates get a fresh CN (``prov-<hex>``): the
broker takes the CN as the username, and the thing name is only known at
RegisterThing, so registering a certificate to a thing adds an ACL entry for that CN
(see ``acl_entries``), which the simulator loads into Mosquitto before it answers.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from chariotd.sim import pki
from chariotd.sim.acl import registered_entries
from chariotd.sim.log import log
from chariotd.sim.store import Store
from chariotd.sim.templates import ParameterError, Template, TemplateError
from chariotd.sim.topics import THING_NAME

Response = Tuple[str, dict]
TOKEN_LIFETIME = 3600  # §3: the ownership token expires after one hour


class ProvisioningError(Exception):
    """A rejection: {statusCode, errorCode, errorMessage} on the */rejected topic."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message

    def payload(self) -> dict:
        return {"statusCode": self.status, "errorCode": self.code, "errorMessage": self.message}


@dataclass(frozen=True)
class ProvisioningRequest:
    op: str                      # "create", "create-from-csr" or "register"
    fmt: str                     # "json" or "cbor"
    template: Optional[str] = None


def parse_provisioning_topic(topic: str) -> Optional[ProvisioningRequest]:
    parts = topic.split("/")
    if len(parts) == 4 and parts[:2] == ["$aws", "certificates"] \
            and parts[2] in ("create", "create-from-csr"):
        return ProvisioningRequest(parts[2], parts[3])
    if len(parts) == 5 and parts[:2] == ["$aws", "provisioning-templates"] \
            and parts[3] == "provision" and parts[2]:
        return ProvisioningRequest("register", parts[4], parts[2])
    return None


def _token_error(message: str) -> ProvisioningError:
    return ProvisioningError(400, "InvalidCertificateOwnershipToken", message)


def acl_entries(store: Store) -> str:
    """Mosquitto ACL lines giving each registered, active certificate its thing's topics."""
    return registered_entries(store.certificates())


class Provisioning:
    """CreateKeysAndCertificate, CreateCertificateFromCsr and RegisterThing.

    TEMPLATES is called for every RegisterThing, so edits to the templates file apply
    at once; ON_REGISTERED(certificate record) runs before the accepted response
    goes out (the simulator reloads the broker's ACL there).
    """

    def __init__(self, ca: pki.CA, store: Store, templates: Callable[[], Dict[str, Template]],
                 on_registered: Callable[[dict], None] = lambda cert: None,
                 token_lifetime: int = TOKEN_LIFETIME):
        self.ca = ca
        self.store = store
        self.templates = templates
        self.on_registered = on_registered
        self.token_lifetime = token_lifetime

    def handle(self, topic: str, payload: bytes, now: int) -> List[Response]:
        request = parse_provisioning_topic(topic)
        if request is None:
            return []
        if request.fmt != "json":
            log(f"dropped {topic}: only the json format is simulated")
            return []
        try:
            if request.op == "create":
                accepted = self.create_keys_and_certificate(now)
            elif request.op == "create-from-csr":
                accepted = self.create_certificate_from_csr(payload, now)
            else:
                accepted = self.register_thing(request.template, payload, now)
        except ProvisioningError as error:
            log(f"rejected {topic}: {error}")
            return [(f"{topic}/rejected", error.payload())]
        return [(f"{topic}/accepted", accepted)]

    # -- certificates

    def _new_certificate(self, certificate_pem: bytes, cn: str, now: int) -> dict:
        record = {
            "certificateId": pki.certificate_id(certificate_pem),
            "commonName": cn,
            "status": "PENDING_ACTIVATION",
            "certificateOwnershipToken": secrets.token_urlsafe(48),
            "tokenExpires": now + self.token_lifetime,
            "thingName": None,
            "created": now,
        }
        self.store.save_certificate(record)
        return record

    def create_keys_and_certificate(self, now: int) -> dict:
        cn = f"prov-{secrets.token_hex(8)}"
        certificate, private_key = self.ca.issue_client(cn, kind="rsa")
        record = self._new_certificate(certificate, cn, now)
        log(f"issued certificate {record['certificateId'][:12]}... (CN {cn}) with a new key")
        return {"certificateId": record["certificateId"],
                "certificatePem": certificate.decode(),
                "privateKey": private_key.decode(),
                "certificateOwnershipToken": record["certificateOwnershipToken"]}

    def create_certificate_from_csr(self, payload: bytes, now: int) -> dict:
        doc = _json_object(payload)
        csr = doc.get("certificateSigningRequest")
        if not isinstance(csr, str) or not csr.strip():
            raise ProvisioningError(400, "InvalidCertificateSigningRequest",
                                    "Certificate signing request cannot be empty.")
        cn = f"prov-{secrets.token_hex(8)}"
        try:
            certificate = self.ca.sign_csr(csr.encode(), cn)
        except (ValueError, TypeError):
            raise ProvisioningError(400, "InvalidCertificateSigningRequest",
                                    "Certificate signing request is not valid.") from None
        record = self._new_certificate(certificate, cn, now)
        log(f"issued certificate {record['certificateId'][:12]}... (CN {cn}) from a CSR")
        return {"certificateId": record["certificateId"],
                "certificatePem": certificate.decode(),
                "certificateOwnershipToken": record["certificateOwnershipToken"]}

    # -- things

    def _certificate_for(self, token, now: int) -> dict:
        if not isinstance(token, str) or not token:
            raise _token_error("Certificate ownership token cannot be empty.")
        for cert in self.store.certificates():
            if secrets.compare_digest(cert.get("certificateOwnershipToken", ""), token):
                if now >= cert["tokenExpires"]:
                    if cert["status"] == "PENDING_ACTIVATION":
                        self.store.delete_certificate(cert["certificateId"])
                    raise _token_error("Certificate ownership token has expired.")
                return cert
        raise _token_error("Certificate ownership token is not valid.")

    def register_thing(self, template_name: str, payload: bytes, now: int) -> dict:
        doc = _json_object(payload)
        cert = self._certificate_for(doc.get("certificateOwnershipToken"), now)
        try:
            template = self.templates().get(template_name)
        except TemplateError as error:
            log(f"templates file: {error}")
            raise ProvisioningError(500, "InternalFailure", "Internal service failure") from None
        if template is None:
            raise ProvisioningError(404, "ResourceNotFound",
                                    f"Template {template_name} not found")
        try:
            values = template.resolve(doc.get("parameters"))
            thing, configuration = template.render(values)
        except ParameterError as error:
            raise ProvisioningError(400, "InvalidParameters", str(error)) from None
        if template.denied(values):
            raise ProvisioningError(403, "AccessDenied",
                                    "Provisioning was denied by the pre-provisioning hook.")
        if not THING_NAME.match(thing):
            raise ProvisioningError(400, "InvalidParameters", f"Invalid thing name: {thing!r}")
        if cert.get("thingName") not in (None, thing):
            raise _token_error("Certificate ownership token has already been used.")

        record = self.store.load_thing(thing) or {"thingName": thing, "certificates": []}
        record["template"] = template.name
        record["attributes"] = values
        if cert["certificateId"] not in record["certificates"]:
            record["certificates"].append(cert["certificateId"])
        self.store.save_thing(record)
        cert = dict(cert, status=template.certificate_status, thingName=thing)
        self.store.save_certificate(cert)
        self.on_registered(cert)
        log(f"registered thing {thing} with certificate {cert['certificateId'][:12]}... "
            f"({cert['status']})")
        return {"deviceConfiguration": configuration, "thingName": thing}


def _json_object(payload: bytes) -> dict:
    try:
        doc = json.loads(payload.decode("utf-8")) if payload.strip() else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProvisioningError(400, "InvalidPayload", "Payload is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise ProvisioningError(400, "InvalidPayload", "Payload must be a JSON object.")
    return doc
