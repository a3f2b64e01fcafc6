"""A role's mailbox: one PULL socket bound at ipc://RUNDIR/<role>, plus one PUSH
socket per peer it sends to (connected lazily; ZeroMQ queues until the peer binds).

A pass of the loop takes at most PASS_LIMIT frames, so that timers and signals (SIGCHLD,
SIGTERM) still run while a peer floods the mailbox. The rest is taken on the next
passes: the loop polls the socket itself (zmq_poll), which reports POLLIN as long as a
frame is waiting (level-triggered, unlike the socket's ZMQ_FD), so it wakes at once.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Dict, Iterator, Tuple

import zmq

from chariotd.ipc.messages import BadFrame, decode, encode, validate

log = logging.getLogger(__name__)

# Frames queued to a peer before a send blocks. Windows keep real traffic far below it.
SEND_QUEUE = 100_000

# Frames taken from the mailbox in one pass of the loop. A frame's handler may write
# and fsync an outfile (a few ms on flash), so timers wait at most about that many.
PASS_LIMIT = 100


def address(rundir: str, role: str) -> str:
    return f"ipc://{os.path.join(rundir, role)}"


class Mailbox:
    def __init__(self, context: zmq.Context, rundir: str, role: str):
        self.context = context
        self.rundir = rundir
        self.role = role
        self.socket = context.socket(zmq.PULL)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(address(rundir, role))
        self._peers: Dict[str, zmq.Socket] = {}
        self.received = 0  # frames taken, ever

    def _peer(self, role: str) -> zmq.Socket:
        sock = self._peers.get(role)
        if sock is None:
            sock = self.context.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 500)
            sock.setsockopt(zmq.SNDHWM, SEND_QUEUE)
            sock.connect(address(self.rundir, role))
            self._peers[role] = sock
        return sock

    def send(self, role: str, message) -> None:
        validate(message)
        self._peer(role).send(encode(message, self.role))

    def receive(self, limit: int = PASS_LIMIT) -> Iterator[Tuple[str, object]]:
        """At most LIMIT of the frames waiting now, decoded; bad frames are logged and
        dropped (and count against LIMIT)."""
        for _ in range(limit):
            try:
                data = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.received += 1
            try:
                yield decode(data)
            except BadFrame as error:
                log.warning("dropped a bad frame: %s", error)

    def dispatch(self, handlers: Dict[type, Callable[[str, object], None]],
                 limit: int = PASS_LIMIT) -> None:
        """Hand at most LIMIT waiting messages to the handler for their kind; the loop's
        next pass comes back for the rest."""
        for sender, message in self.receive(limit):
            handler = handlers.get(type(message))
            if handler is None:
                log.warning("unexpected %s from %s", message.op, sender)
            else:
                handler(sender, message)

    def close(self) -> None:
        for sock in self._peers.values():
            sock.close()
        self.socket.close()
