"""A role's mailbox: one PULL socket bound at ipc://RUNDIR/<role>, plus one PUSH
socket per peer it sends to (connected lazily; ZeroMQ queues until the peer binds)."""

from __future__ import annotations

import logging
import os
from typing import Callable, Dict, Iterator, Tuple

import zmq

from chariotd.ipc.messages import BadFrame, decode, encode, validate

log = logging.getLogger(__name__)

# Frames queued to a peer before a send blocks. Windows keep real traffic far below it.
SEND_QUEUE = 100_000


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

    def receive(self) -> Iterator[Tuple[str, object]]:
        """Every frame waiting now, decoded; bad frames are logged and dropped."""
        while True:
            try:
                data = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                yield decode(data)
            except BadFrame as error:
                log.warning("dropped a bad frame: %s", error)

    def dispatch(self, handlers: Dict[type, Callable[[str, object], None]]) -> None:
        """Hand every waiting message to the handler for its kind."""
        for sender, message in self.receive():
            handler = handlers.get(type(message))
            if handler is None:
                log.warning("unexpected %s from %s", message.op, sender)
            else:
                handler(sender, message)

    def close(self) -> None:
        for sock in self._peers.values():
            sock.close()
        self.socket.close()
