"""A small certificate authority: the simulator's CA, server and device certificates.

Everything here takes and returns PEM bytes or paths; nothing is ever logged.
Keys are EC P-256 unless an RSA key is asked for (AWS's CreateKeysAndCertificate
issues RSA-2048).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chariotd.kernel.fsutil import write_file_atomic

VALIDITY = datetime.timedelta(days=3650)


def new_key(kind: str = "ec"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_id(pem: bytes) -> str:
    """AWS-style certificate id: 64 hex digits (SHA-256 of the DER encoding)."""
    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def common_name(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class CA:
    """A CA kept as DIR/ca.crt and DIR/ca.key, created on first use."""

    def __init__(self, cert: x509.Certificate, key, cert_path: Path, key_path: Path):
        self.cert = cert
        self.key = key
        self.cert_path = cert_path
        self.key_path = key_path

    @classmethod
    def load_or_create(cls, directory, cn: str = "chariotd-sim CA", name: str = "ca") -> "CA":
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            return cls(cert, key, cert_path, key_path)
        key = new_key()
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        write_file_atomic(key_path, key_pem(key), mode=0o600)
        write_file_atomic(cert_path, cert_pem(cert), mode=0o644)
        return cls(cert, key, cert_path, key_path)

    def _sign(self, subject_cn: str, public_key, server_names=(), client=True) -> bytes:
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject_cn))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server_names:
            alt = []
            for host in server_names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    alt.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        usage = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        return cert_pem(builder.sign(self.key, hashes.SHA256()))

    def issue_server(self, directory, name: str = "server", hosts=("localhost", "127.0.0.1")):
        """Write DIR/NAME.crt and DIR/NAME.key (reused when present); return both paths."""
        directory = Path(directory)
        crt, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        if not (crt.exists() and key_path.exists()):
            key = new_key()
            write_file_atomic(key_path, key_pem(key), mode=0o600)
            write_file_atomic(crt, self._sign(hosts[0], key.public_key(), hosts, client=False))
        return crt, key_path

    def issue_client(self, cn: str, kind: str = "ec"):
        """A new client certificate for CN; returns (certificate PEM, private key PEM)."""
        key = new_key(kind)
        return self._sign(cn, key.public_key()), key_pem(key)

    def sign_csr(self, csr_pem: bytes, cn: str) -> bytes:
        """Sign a CSR (after checking its signature); the subject is CN, not the CSR's."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("CSR signature is not valid")
        return self._sign(cn, csr.public_key())


def write_certstore(path, endpoint: str, certificate: bytes, private_key: bytes) -> str:
    """Lay out a chariotd certstore holding one certificate; return its id."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    write_file_atomic(path / "endpoint.txt", endpoint.encode() + b"\n", mode=0o644)
    cert_id = certificate_id(certificate)
    certdir = path / cert_id
    certdir.mkdir(mode=0o700, exist_ok=True)
    write_file_atomic(certdir / f"{cert_id}-private.pem.key", private_key, mode=0o600)
    write_file_atomic(certdir / f"{cert_id}-certificate.pem.crt", certificate, mode=0o644)
    return cert_id
