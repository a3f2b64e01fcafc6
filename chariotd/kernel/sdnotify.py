"""The sd_notify protocol, spoken directly (no libsystemd): one datagram of
`KEY=VALUE` lines to the AF_UNIX socket named by $NOTIFY_SOCKET.

    READY=1            the service is up (for chariotd: the link is connected)
    STATUS=...         one line shown by `systemctl status`
    WATCHDOG=1         "still alive"; must arrive within WatchdogSec= or systemd acts
    STOPPING=1         an orderly stop has begun

Only the supervisor's parent process talks to systemd. `Notifier.from_environment`
removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment (as
sd_notify's unset_environment does) so that no child, nor a command a child runs,
inherits them. Without $NOTIFY_SOCKET every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import MutableMapping, Optional

log = logging.getLogger(__name__)

ENV_NAMES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(name: str) -> Optional[str]:
    """The sendto() address for a $NOTIFY_SOCKET value, or None if it is not usable.
    `@name` is Linux's abstract namespace (a leading NUL byte); otherwise an absolute
    path. (systemd's `vsock:` addresses are for virtual machines; not supported.)"""
    if name.startswith("@") and len(name) > 1:
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    return None


def watchdog_seconds(environ: MutableMapping[str, str], pid: int) -> Optional[float]:
    """WatchdogSec= as seconds when the watchdog is meant for process PID, else None
    (the rules of sd_watchdog_enabled: WATCHDOG_USEC a positive integer, and
    WATCHDOG_PID, when set, equal to PID)."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 1_000_000


class Notifier:
    def __init__(self, address: Optional[str], watchdog: Optional[float] = None):
        self.address = address
        self.watchdog = watchdog if address else None  # seconds, None when disabled
        self._socket: Optional[socket.socket] = None
        self._warned = False

    @classmethod
    def from_environment(cls, environ: Optional[MutableMapping[str, str]] = None,
                         pid: Optional[int] = None, unset: bool = True) -> "Notifier":
        environ = os.environ if environ is None else environ
        pid = os.getpid() if pid is None else pid
        name = environ.get("NOTIFY_SOCKET", "")
        address = socket_address(name) if name else None
        if name and address is None:
            log.warning("NOTIFY_SOCKET=%s is not a path or @abstract name; ignored", name)
        watchdog = watchdog_seconds(environ, pid)
        if unset:
            for key in ENV_NAMES:
                environ.pop(key, None)
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send LINES (each `KEY=VALUE`) as one datagram; False if it could not be sent.
        A systemd that went away is logged once and otherwise ignored."""
        if self.address is None:
            return False
        data = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX,
                                             socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.setblocking(False)
            self._socket.sendto(data, self.address)
            return True
        except OSError as error:
            if not self._warned:
                log.warning("cannot notify systemd at %s: %s",
                            self.address.replace("\0", "@"), error.strerror or error)
                self._warned = True
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog_ping(self) -> bool:
        return self.watchdog is not None and self.notify("WATCHDOG=1")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
