"""Device keys for fleet provisioning by CSR: an EC P-256 key made on the device and
the certificate signing request for it; and a check that a certificate fits a key.
Returns PEM text; nothing here logs or touches a file."""

from __future__ import annotations

from typing import Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def new_key_and_csr(common_name: str) -> Tuple[str, str]:
    """(private key PEM, CSR PEM). AWS ignores the CSR's subject; we put CN=COMMON_NAME."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return key_pem.decode(), csr.public_bytes(serialization.Encoding.PEM).decode()


def certificate_fits_key(cert_pem: str, key_pem: str) -> bool:
    """True when CERT_PEM certifies the public half of KEY_PEM."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
