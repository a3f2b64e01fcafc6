"""Certificate stores: `endpoint.txt`, one directory per certificate, and the
`preferred` symlink naming the certificate to use next.

    CERTSTORE/endpoint.txt                      host or host:port (default port 8883)
    CERTSTORE/<id>/<id>-certificate.pem.crt
    CERTSTORE/<id>/<id>-private.pem.key
    CERTSTORE/preferred -> <id>
    CERTSTORE/.replacing                        after a reprovision: the new certificate's id

`add` puts a new certificate in crash-safely: the directory is built under a hidden
temporary name (key 0600, directory 0700, every file fsync'd) and renamed into place
last, so a crash or an error never leaves a partial certificate directory. After a
reprovision the old certificates stay until the new one has connected once
(`mark_replacing`, then `retire_replaced`).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

from chariotd.kernel import safe_open
from chariotd.kernel.fsutil import fsync_dir, remove_stale_temps, replace_symlink, write_file_atomic

DEFAULT_PORT = 8883
PREFERRED = "preferred"
REPLACING = ".replacing"  # names the certificate a reprovision added, until it connects
ADDING = ".adding-"  # a certificate directory being built (hidden: names start with '.')
MAX_SMALL_FILE = 4096  # endpoint.txt, .replacing
CERT_ID_RE = re.compile(r"^[0-9A-Za-z]{1,128}$")


class CertstoreError(Exception):
    pass


HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
SHOWN_ENDPOINT = 80  # characters of a bad endpoint.txt put in the error


def _shown(value: str) -> str:
    return repr(value[:SHOWN_ENDPOINT]) + ("..." if len(value) > SHOWN_ENDPOINT else "")


def _check_host(host: str, value: str) -> None:
    """HOST is a DNS name or an IPv4 address (AWS: `prefix-ats.iot.REGION.amazonaws.com`)."""
    if "://" in value:
        raise CertstoreError(f"endpoint {_shown(value)} is a URL: write only the host "
                             "name (and :port), e.g. abc123-ats.iot.eu-west-1.amazonaws.com")
    for char, what in (("/", "a path"), ("@", "a user name"), ("?", "a query")):
        if char in value:
            raise CertstoreError(f"endpoint {_shown(value)} holds {what}: write only "
                                 "host or host:port")
    if len(host) > 253 or not all(HOST_LABEL.match(label) for label in host.split(".")):
        raise CertstoreError(f"endpoint {_shown(value)} is not host or host:port (a host "
                             "is DNS labels of letters, digits and '-' joined by '.')")


def parse_endpoint(text: str) -> Tuple[str, int]:
    """`host`, `host:port` or `[v6addr]:port` -> (host, port): the one line of
    endpoint.txt (whitespace around it and a final newline are allowed). Anything else
    (a URL, a path, spaces inside, several lines) is an error naming the problem, found
    when the configuration is checked at start rather than by a failing connection."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        raise CertstoreError(f"endpoint.txt holds {len(lines)} lines: write one, host or "
                             "host:port")
    value = lines[0] if lines else ""
    if not value:
        raise CertstoreError("endpoint.txt is empty: write host or host:port")
    if any(ch.isspace() for ch in value):
        raise CertstoreError(f"endpoint {_shown(value)} holds a space: write host or "
                             "host:port")
    host, port = value, str(DEFAULT_PORT)
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise CertstoreError(f"endpoint {_shown(value)}: unclosed '['")
        host, rest = value[1:close], value[close + 1:]
        if rest:
            if not rest.startswith(":"):
                raise CertstoreError(f"endpoint {_shown(value)} is not [address]:port")
            port = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise CertstoreError(f"endpoint {_shown(value)}: {host[:SHOWN_ENDPOINT]!r} "
                                 "is not an IPv6 address") from None
    else:
        if ":" in value and "://" not in value:
            host, _, port = value.rpartition(":")
        _check_host(host, value)
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise CertstoreError(f"endpoint {_shown(value)}: the port is not a number from 1 "
                             "to 65535")
    return host, int(port)


class Certificate(NamedTuple):
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
            # The certstore is root's (it holds the private keys): endpoint.txt may be a
            # link to a shared file, as with the original; never a FIFO.
            data, _ = safe_open.read_file(self.endpoint_file, MAX_SMALL_FILE,
                                          follow_links=True)
        except OSError as error:
            raise CertstoreError(f"certstore {self.path}: cannot read endpoint.txt: "
                                 f"{error.strerror or error}") from None
        return parse_endpoint(data.decode("utf-8", "replace"))

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

    def add(self, cert_id: str, cert_pem: bytes, key_pem: bytes) -> Certificate:
        """Store a certificate and its private key as CERTSTORE/<id>/ (does not make it
        preferred). An existing directory of that id is replaced."""
        if not CERT_ID_RE.match(cert_id):
            raise CertstoreError(f"{cert_id!r} is not a certificate id")
        self._sweep()
        building = self.path / f"{ADDING}{cert_id}-{os.getpid()}"
        final = self.path / cert_id
        os.mkdir(building, 0o700)
        try:
            os.chmod(building, 0o700)
            write_file_atomic(building / f"{cert_id}-private.pem.key", key_pem, mode=0o600)
            write_file_atomic(building / f"{cert_id}-certificate.pem.crt", cert_pem,
                              mode=0o644)
            if os.path.lexists(final):
                stale = self.path / f"{ADDING}{cert_id}-{os.getpid()}-replaced"
                os.rename(final, stale)
                os.rename(building, final)
                shutil.rmtree(stale, ignore_errors=True)
            else:
                os.rename(building, final)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        fsync_dir(self.path)
        return Certificate(cert_id, final / f"{cert_id}-certificate.pem.crt",
                           final / f"{cert_id}-private.pem.key")

    def _sweep(self) -> None:
        """Remove directories a crash left half-built."""
        for entry in os.scandir(self.path):
            if entry.name.startswith(ADDING) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)

    def sweep(self) -> List[str]:
        """At start: remove what a process killed mid-write left (half-built certificate
        directories, temp names of `preferred` and `.replacing`). Returns the names
        removed; raises OSError when the certstore cannot be listed."""
        before = {entry.name for entry in os.scandir(self.path)
                  if entry.name.startswith(ADDING)}
        self._sweep()
        removed = sorted(before)
        for name in (PREFERRED, REPLACING):
            removed += remove_stale_temps(self.path / name)
        return removed

    def mark_replacing(self, cert_id: str) -> None:
        """CERT_ID replaces the other certificates once it has connected."""
        write_file_atomic(self.path / REPLACING, cert_id.encode() + b"\n")

    def retire_replaced(self, connected_id: str) -> List[str]:
        """CONNECTED_ID has connected. When it is the certificate `mark_replacing` named,
        every other certificate directory is deleted; returns the ids removed."""
        try:
            data, _ = safe_open.read_file(self.path / REPLACING, MAX_SMALL_FILE)
            replacing = data.decode("utf-8", "replace").strip()
        except FileNotFoundError:
            return []
        if replacing != connected_id:
            return []  # the new certificate has not connected (yet): keep the old ones
        removed = []
        for certificate in self.certificates():
            if certificate.id != connected_id:
                shutil.rmtree(self.path / certificate.id)
                removed.append(certificate.id)
        os.unlink(self.path / REPLACING)
        fsync_dir(self.path)
        return removed
