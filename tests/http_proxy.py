"""A small HTTP CONNECT proxy for the tests (threads, loopback only).

    proxy = HttpProxy(auth=("user", "secret"))   # Basic auth required (optional)
    proxy.refuse = (403, "Forbidden")            # answer every CONNECT with this
    proxy.drop_after = 2000                      # close each tunnel after N bytes
    proxy.connects                               # the CONNECT targets seen, in order
    proxy.stop()

Only CONNECT is served; each tunnel copies bytes both ways until one side closes.
"""

from __future__ import annotations

import base64
import socket
import threading
from typing import List, Optional, Tuple


class HttpProxy:
    def __init__(self, auth: Optional[Tuple[str, str]] = None):
        self.auth = auth
        self.refuse: Optional[Tuple[int, str]] = None
        self.drop_after: Optional[int] = None
        self.connects: List[str] = []
        self.authorizations: List[Optional[str]] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            client.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target, _ = (lines[0].split(" ") + ["", "", ""])[:3]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            with self._lock:
                self.connects.append(target)
                self.authorizations.append(headers.get("proxy-authorization"))
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            if self.auth is not None:
                expected = "Basic " + base64.b64encode(
                    f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
                if headers.get("proxy-authorization") != expected:
                    client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                   b"Proxy-Authenticate: Basic realm=\"test\"\r\n\r\n")
                    return
            if self.refuse is not None:
                code, reason = self.refuse
                client.sendall(f"HTTP/1.1 {code} {reason}\r\n\r\n".encode())
                return
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            self._track(upstream)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            client.settimeout(None)
            upstream.settimeout(None)
            budget = [self.drop_after]
            threading.Thread(target=self._pipe, args=(upstream, client, budget, upstream),
                             daemon=True).start()
            self._pipe(client, upstream, budget, upstream)
        except OSError:
            pass
        finally:
            client.close()

    def _pipe(self, source, sink, budget, upstream) -> None:
        """Copy SOURCE to SINK; with a budget, close both sides once it is spent."""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
                if budget[0] is not None:
                    budget[0] -= len(data)
                    if budget[0] <= 0:
                        break
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stopped = True
        self._server.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
