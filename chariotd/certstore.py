"""Certificate stores: `endpoint.txt`, one directory per certificate, and the
`preferred` symlink naming the certificate to use next.

    CERTSTORE/endpoint.txt                      host or host:port (default port 8883)
    CERTSTORE/<id>/<id>-certificate.pem.crt
    CERTSTORE/<id>/<id>-private.pem.key
    CERTSTORE/preferred -> <id>
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from chariotd.fsutil import replace_symlink

DEFAULT_PORT = 8883
PREFERRED = "preferred"


class CertstoreError(Exception):
    pass


def parse_endpoint(text: str) -> Tuple[str, int]:
    """`host`, `host:port` or `[v6addr]:port` -> (host, port)."""
    value = text.strip()
    if not value or any(ch.isspace() for ch in value):
        raise CertstoreError(f"endpoint {text.strip()!r} is not host or host:port")
    host, port = value, str(DEFAULT_PORT)
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise CertstoreError(f"endpoint {value!r}: unclosed '['")
        host, rest = value[1:close], value[close + 1:]
        if rest:
            if not rest.startswith(":"):
                raise CertstoreError(f"endpoint {value!r} is not [address]:port")
            port = rest[1:]
    elif ":" in value:
        host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CertstoreError(f"endpoint {value!r} is not host or host:port")
    return host, int(port)


@dataclass(frozen=True)
class Certificate:
    id: str
    cert_path: Path
    key_path: Path


class Certstore:
    def __init__(self, path):
        self.path = Path(path)

    @property
    def endpoint_file(self) -> Path:
        return self.path / "endpoint.txt"

    def endpoint(self) -> Tuple[str, int]:
        try:
            text = self.endpoint_file.read_text()
        except OSError as error:
            raise CertstoreError(f"certstore {self.path}: cannot read endpoint.txt: "
                                 f"{error.strerror}") from None
        return parse_endpoint(text)

    def certificates(self) -> List[Certificate]:
        """Every complete certificate directory, sorted by id."""
        found = []
        try:
            entries = sorted(os.scandir(self.path), key=lambda e: e.name)
        except OSError as error:
            raise CertstoreError(f"certstore {self.path}: {error.strerror}") from None
        for entry in entries:
            if entry.name == PREFERRED or entry.name.startswith(".") or not entry.is_dir(
                    follow_symlinks=False):
                continue
            cert = Path(entry.path) / f"{entry.name}-certificate.pem.crt"
            key = Path(entry.path) / f"{entry.name}-private.pem.key"
            if cert.is_file() and key.is_file():
                found.append(Certificate(entry.name, cert, key))
        return found

    def _preferred_id(self) -> Optional[str]:
        try:
            return os.path.basename(os.readlink(self.path / PREFERRED).rstrip("/"))
        except OSError:
            return None

    def preferred(self) -> Optional[Certificate]:
        """The certificate `preferred` names; the link is (re)made, pointing at the
        newest certificate, when it is missing or names no certificate."""
        certificates = self.certificates()
        if not certificates:
            return None
        current = self._preferred_id()
        for certificate in certificates:
            if certificate.id == current:
                return certificate
        newest = max(certificates, key=lambda c: (c.cert_path.stat().st_mtime, c.id))
        self.set_preferred(newest.id)
        return newest

    def set_preferred(self, cert_id: str) -> None:
        replace_symlink(self.path / PREFERRED, cert_id)

    def rotate(self) -> Optional[Certificate]:
        """Point `preferred` at the next certificate (in id order, wrapping around).
        Returns the new preferred certificate, or None when there is only one or none."""
        certificates = self.certificates()
        if len(certificates) < 2:
            return None
        ids = [c.id for c in certificates]
        current = self._preferred_id()
        index = ids.index(current) if current in ids else -1
        chosen = certificates[(index + 1) % len(certificates)]
        self.set_preferred(chosen.id)
        return chosen
