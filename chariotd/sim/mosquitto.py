"""Run a real Mosquitto broker configured like AWS IoT Core (TLS, client certificates).

Used by `chariotd-sim up` and by the test suite. The broker listens on 127.0.0.1
only, requires a client certificate signed by the CA, takes the certificate's CN as
the username, refuses QoS 2 and limits messages to AWS's 128 KB.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from chariotd.sim.acl import DEFAULT_ACL, OPEN_ACL, SERVICE_USER  # noqa: F401 (re-exported)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("mosquitto not found (install the Debian package 'mosquitto')")


def render_config(workdir: Path, port: int, cafile, certfile, keyfile, acl_path: Path,
                  message_size_limit: int = 131072, max_packet_size: int = 0,
                  max_keepalive: int = 0, persistence: bool = False, extra: str = "") -> str:
    user = pwd.getpwuid(os.getuid()).pw_name
    lines = [
        # Running as root, mosquitto would switch to user 'mosquitto' and then fail to
        # read our 0600 keys; naming the current user keeps it as it was started.
        f"user {user}",
        f"persistence {'true' if persistence else 'false'}",
        f"persistence_location {workdir}/",
        f"log_dest file {workdir / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "per_listener_settings false",
        "allow_anonymous false",
        "allow_zero_length_clientid false",
        f"acl_file {acl_path}",
        f"listener {port} 127.0.0.1",
        f"cafile {cafile}",
        f"certfile {certfile}",
        f"keyfile {keyfile}",
        "require_certificate true",
        "use_identity_as_username true",
        "tls_version tlsv1.2",
        "max_qos 1",
        f"message_size_limit {message_size_limit}",
        "set_tcp_nodelay true",
        "max_inflight_messages 100",
        "max_queued_messages 100000",
    ]
    if max_packet_size:
        lines.append(f"max_packet_size {max_packet_size}")
    if max_keepalive:
        lines.append(f"max_keepalive {max_keepalive}")
    return "\n".join(lines) + "\n" + extra


class Mosquitto:
    """One mosquitto process in WORKDIR on 127.0.0.1:PORT."""

    def __init__(self, workdir, cafile, certfile, keyfile, port: int = 0, acl: str = OPEN_ACL,
                 **options):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.acl_path = self.workdir / "acl"
        self.acl_path.write_text(acl)
        self.config_path = self.workdir / "mosquitto.conf"
        self.config_path.write_text(
            render_config(self.workdir, self.port, cafile, certfile, keyfile, self.acl_path,
                          **options))
        self.log_path = self.workdir / "mosquitto.log"
        self.process = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with status {self.process.returncode}; "
                                   f"see {self.log_path}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.endpoint} within {timeout}s")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing is answered."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> "Mosquitto":
        self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
