"""The MQTT connection through an HTTP proxy (--http-proxy): an HTTP CONNECT tunnel.

    CONNECT host:port HTTP/1.1          ->  proxy
    Host: host:port
    Proxy-Authorization: Basic ...      (when the proxy URL names a user)
                                        <-  HTTP/1.1 200 Connection established

then TLS runs over that socket as it does over a direct one (session.py). The
proxy's answer is hostile input: at most MAX_ANSWER bytes (status line and headers)
are read, within the connect timeout; anything else is a `ProxyRefused`, which names
the proxy and its status and never counts against the device certificate (the
certificate is not at fault when the proxy is). The password is never logged.

`request` and `parse_answer` are pure; `open_tunnel` does the socket work.
"""

from __future__ import annotations

import base64
import socket
import time
from typing import Iterable, Optional, Tuple

from chariotd.config import HttpProxy

# The proxy's status line and headers; an answer longer than this is refused.
MAX_ANSWER = 8192
MAX_REASON = 80  # characters of the proxy's reason phrase kept for the log line


class ProxyRefused(ConnectionError):
    """The proxy did not open the tunnel (its text names the proxy and why)."""


def authority(host: str, port: int) -> str:
    """host:port as HTTP writes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def request(proxy: HttpProxy, host: str, port: int) -> bytes:
    """The CONNECT request that asks PROXY for a tunnel to HOST:PORT."""
    target = authority(host, port)
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.username is not None:
        secret = f"{proxy.username}:{proxy.password or ''}".encode()
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(secret).decode())
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def printable(data: bytes) -> str:
    """DATA as one short log-safe line: ASCII printable only, at most MAX_REASON."""
    text = "".join(c if " " <= c <= "~" else "?" for c in data.decode("latin-1"))
    return text[:MAX_REASON] + ("..." if len(text) > MAX_REASON else "")


def parse_answer(answer: bytes) -> Tuple[int, str]:
    """(status, reason) of the proxy's ANSWER (status line and headers, without the
    blank line); ValueError when it is not an HTTP answer."""
    status_line = answer.split(b"\r\n", 1)[0]
    parts = status_line.split(b" ", 2)
    if (len(parts) < 2 or not parts[0].startswith(b"HTTP/1.")
            or len(parts[1]) != 3 or not parts[1].isdigit()):
        raise ValueError(f"not an HTTP answer: {printable(status_line)!r}")
    return int(parts[1]), printable(parts[2]) if len(parts) > 2 else ""


def read_answer(sock: socket.socket, deadline: float, where: str) -> bytes:
    """The answer's status line and headers from SOCK, by DEADLINE (monotonic). The
    tunnel's first byte comes from the server only after our TLS ClientHello, so
    nothing may follow the blank line."""
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProxyRefused(f"proxy {where} did not answer CONNECT in time")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(MAX_ANSWER + 1 - len(data))
        except socket.timeout:
            raise ProxyRefused(f"proxy {where} did not answer CONNECT in time") from None
        if not chunk:
            raise ProxyRefused(f"proxy {where} closed the connection before answering "
                               f"CONNECT")
        data += chunk
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            if end + 4 != len(data):
                raise ProxyRefused(f"proxy {where} sent data after its answer to CONNECT")
            return data[:end]
        if len(data) > MAX_ANSWER:
            raise ProxyRefused(f"proxy {where} answered CONNECT with more than "
                               f"{MAX_ANSWER} bytes of headers")


def bypassed(host: str, no_proxy: Iterable[str]) -> bool:
    """True when HOST is reached directly by no_proxy's rule: "*", the host itself,
    or a domain it is in (".example.com" and "example.com" both match
    a.example.com). Ports in entries are ignored."""
    host = host.lower().rstrip(".")
    for entry in no_proxy:
        entry = entry.strip().lower()
        if entry == "*":
            return True
        if entry.count(":") == 1:  # name:port (an IPv6 address has more colons)
            entry = entry.split(":")[0]
        entry = entry.strip("[]").lstrip(".").rstrip(".")
        if entry and (host == entry or host.endswith("." + entry)):
            return True
    return False


def open_tunnel(proxy: HttpProxy, host: str, port: int, timeout: float,
                source: Optional[Tuple[str, int]] = None) -> socket.socket:
    """A socket connected to HOST:PORT through PROXY, ready for TLS; ProxyRefused
    (a ConnectionError) when the proxy does not open the tunnel, OSError when it
    cannot be reached. The whole exchange takes at most TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    where = str(proxy)
    try:
        sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout,
                                        source_address=source)
    except OSError as error:
        raise ProxyRefused(f"cannot reach proxy {where}: "
                           f"{error.strerror or error}") from None
    try:
        sock.sendall(request(proxy, host, port))
        answer = read_answer(sock, deadline, where)
        try:
            status, reason = parse_answer(answer)
        except ValueError as error:
            raise ProxyRefused(f"proxy {where} answered CONNECT with {error}") from None
        if not 200 <= status < 300:
            raise ProxyRefused(f"proxy {where} refused CONNECT: {status} {reason}".rstrip())
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        return sock
    except ProxyRefused:
        sock.close()
        raise
    except OSError as error:
        sock.close()
        raise ProxyRefused(f"proxy {where} failed during CONNECT: "
                           f"{error.strerror or error}") from None
    except BaseException:
        sock.close()
        raise
