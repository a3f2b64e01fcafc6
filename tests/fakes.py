"""Fakes for driving a role in-process: the role's own code, with the loop, the mailbox
and the paho client replaced by objects the test drives. No network, no sleeping.

- `FakeLoop`: chariotd.kernel.loop.Loop on a clock the test moves. Its timers are the real
  ones (same heap, order, cancelling); readers, writers and signal handlers are only
  recorded. The test makes something happen with `readable(key)`, `signal(signum)` or
  `advance(seconds)`; each is one pass of the loop and ends, as Loop.run's passes do,
  with the timers due and the after-each callbacks.
- `FakeMailbox`: chariotd.ipc.mailbox.Mailbox with stand-ins for its two sockets. A
  frame sent is really validated, encoded and decoded, and recorded per peer as the
  message kind it decoded to (a frame the real mailbox would refuse fails the test);
  `deliver` queues a frame that the real `dispatch` (PASS_LIMIT, bad-frame handling)
  hands to the role when the loop finds the mailbox readable.
- `FakeClient`: what the link uses of a paho client. The test plays the broker: what it
  queues (`connack`, `suback`, `puback`, `message`, `lose`) is read in the link's next
  pass over the client's socket, through the callbacks the link set, with the
  arguments paho 2 (CallbackAPIVersion.VERSION2, MQTT 3.1.1) gives them. Publishes are
  queued until the driver writes them (`loop_write`), as with paho's `quiet_writes`.
- `LinkRig`: the real broker_link Link wired to those three.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

import paho.mqtt.client as mqtt
import zmq
from paho.mqtt.client import ConnectFlags, DisconnectFlags, convert_connack_rc_to_reason_code
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from chariotd import cli
from chariotd.broker_link import main as link_main
from chariotd.kernel import backoff
from chariotd.kernel.mqtt.deadlines import Deadlines
from chariotd.ipc.mailbox import Mailbox
from chariotd.ipc.messages import LinkState, decode, encode
from chariotd.kernel.loop import Loop
from chariotd.kernel.runtime import Role, RoleContext


# -- the loop ------------------------------------------------------------------------------

class FakeLoop(Loop):
    def __init__(self, now: float = 1000.0):
        super().__init__(clock=lambda: self.now)
        self.now = now

    def _update(self, key) -> None:
        pass  # nothing is polled: the test says what is readable

    def on_signal(self, signum: int, callback) -> None:
        self._signal_handlers[signum] = callback  # no real handler, no wake-up pipe

    def run(self) -> int:
        raise AssertionError("a FakeLoop is driven by the test (readable, signal, advance)")

    @property
    def status(self) -> Optional[int]:
        return self._status

    def readers(self) -> List[object]:
        return list(self._readers)

    def next_due(self) -> Optional[float]:
        """When the next live timer fires (None: no timer)."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def _pass(self, event: Optional[Callable[[], None]] = None) -> None:
        """One pass of Loop.run: the event, the timers due, the after-each callbacks."""
        if event is not None and self._status is None:
            event()
        if self._status is None:
            self._run_timers()
        for callback in self._after_each:
            callback()

    def readable(self, key) -> None:
        """A pass in which KEY (a socket or fd with a reader) polled readable."""
        assert key in self._readers, f"nothing reads {key!r}"
        self._pass(self._readers[key])

    def writable(self, key) -> None:
        assert key in self._writers, f"nothing waits to write {key!r}"
        self._pass(self._writers[key])

    def signal(self, signum: int) -> None:
        """A pass in which SIGNUM arrived (through the wake-up pipe, in the real loop)."""
        self._pass(self._signal_handlers[signum])

    def advance(self, seconds: float) -> None:
        """Let SECONDS pass: one pass per moment a timer is due, in order. Stops where
        the time was when the loop was stopped."""
        end = self.now + seconds
        while self._status is None:
            due = self.next_due()
            if due is None or due > end:
                break
            self.now = max(self.now, due)
            self._pass()
        if self._status is None:
            self.now = end


# -- the mailbox ---------------------------------------------------------------------------

class _Inbox:
    """Stands for the mailbox's PULL socket: the frames the test delivered."""

    def __init__(self) -> None:
        self.frames: Deque[bytes] = deque()

    def recv(self, flags: int = 0) -> bytes:
        if not self.frames:
            raise zmq.Again()
        return self.frames.popleft()

    def close(self) -> None:
        pass


class _Peer:
    """Stands for a PUSH socket to PEER: each frame is decoded and recorded."""

    def __init__(self, mailbox: "FakeMailbox", peer: str):
        self.mailbox, self.peer = mailbox, peer

    def send(self, data: bytes) -> None:
        sender, message = decode(data)  # raises BadFrame on a frame no peer would take
        assert sender == self.mailbox.role
        self.mailbox.sent.append((self.peer, message))

    def close(self) -> None:
        pass


class FakeMailbox(Mailbox):
    def __init__(self, role: str):  # no zmq: Mailbox.__init__ would bind a socket
        self.context, self.rundir, self.role = None, "", role
        self.socket = _Inbox()
        self._peers: Dict[str, _Peer] = {}
        self.received = 0
        self.sent: List[Tuple[str, object]] = []  # (peer, message) in the order sent

    def _peer(self, role: str) -> _Peer:
        return self._peers.setdefault(role, _Peer(self, role))

    def deliver(self, sender: str, message) -> None:
        """Queue MESSAGE from SENDER; the role takes it when the loop finds the mailbox
        readable (FakeLoop.readable(mailbox.socket))."""
        self.socket.frames.append(encode(message, sender))

    def deliver_frame(self, data: bytes) -> None:
        self.socket.frames.append(data)

    def sent_to(self, peer: str, kind: Optional[type] = None) -> list:
        return [m for p, m in self.sent if p == peer and (kind is None or isinstance(m, kind))]

    def take(self) -> List[Tuple[str, object]]:
        """What was sent since the last take."""
        sent, self.sent = self.sent, []
        return sent


def role_context(config, role: str, peers: Sequence[str] = (), loop=None, mailbox=None,
                 rundir: str = "", parent_mailbox: Optional[str] = None) -> RoleContext:
    """The RoleContext a child gets, for ROLE among PEERS, with the given fakes."""
    roles = [Role(name, f"chariotd: {name}", name, None) for name in (role, *peers)]
    return RoleContext(role=roles[0], config=config, rundir=rundir, parent_fd=-1,
                       parent_pid=0, roles=roles, parent_mailbox=parent_mailbox,
                       loop=loop, mailbox=mailbox)


def attach_mailbox(loop: FakeLoop, mailbox: FakeMailbox, handlers: Dict[type, Callable]):
    """What every role's run() does with its mailbox."""
    loop.add_reader(mailbox.socket, lambda: mailbox.dispatch(handlers))


# -- the paho client -----------------------------------------------------------------------

class Info:
    """paho's MQTTMessageInfo, as much as the link reads of it."""

    def __init__(self, mid: Optional[int], rc: int = mqtt.MQTT_ERR_SUCCESS):
        self.mid, self.rc = mid, rc


class Publication:
    __slots__ = ("mid", "topic", "payload", "qos")

    def __init__(self, mid: int, topic: str, payload: bytes, qos: int):
        self.mid, self.topic, self.payload, self.qos = mid, topic, payload, qos

    def __repr__(self) -> str:
        return f"Publication({self.mid}, {self.topic!r}, qos={self.qos})"


def _code(packet: int, identifier: int) -> ReasonCode:
    return ReasonCode(packet >> 4, identifier=identifier)


class FakeClient:
    def __init__(self) -> None:
        self.sock, self.broker_end = socket.socketpair()
        self.mids = itertools.count(1)
        self.connected_to: Optional[Tuple[str, int, int]] = None
        self.subscribed: List[Tuple[int, List[str]]] = []  # (mid, filters) per SUBSCRIBE
        self.queued: List[Publication] = []   # publish() called, not written yet
        self.written: List[Publication] = []  # written to the broker, in order
        self.inbound: Deque[Callable[[], None]] = deque()  # what the broker sent
        self.refused = None  # as BoundedClient: a packet refused for its length
        self.disconnected = False
        self.on_connect = self.on_disconnect = self.on_publish = None
        self.on_subscribe = self.on_message = self.on_socket_close = None

    # -- what the link calls ------------------------------------------------------------
    def connect(self, host: str, port: int, keepalive: int) -> None:
        self.connected_to = (host, port, keepalive)

    def socket(self):
        return None if self.sock.fileno() < 0 else self.sock

    @property
    def fd(self) -> int:
        return self.sock.fileno()

    def subscribe(self, filters):
        mid = next(self.mids)
        self.subscribed.append((mid, [topic for topic, _ in filters]))
        return mqtt.MQTT_ERR_SUCCESS, mid

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> Info:
        if self.socket() is None:
            return Info(None, mqtt.MQTT_ERR_NO_CONN)
        publication = Publication(next(self.mids), topic, payload, qos)
        self.queued.append(publication)
        return Info(publication.mid)

    def want_write(self) -> bool:
        return bool(self.queued)

    def loop_write(self) -> int:
        """Write what is queued; a QoS 0 publish is finished by its write (paho calls
        on_publish then)."""
        written, self.queued = self.queued, []
        self.written.extend(written)
        for publication in written:
            if publication.qos == 0:
                self.on_publish(self, None, publication.mid, _code(mqtt.PUBACK, 0),
                                Properties(PacketTypes.PUBACK))
        return mqtt.MQTT_ERR_SUCCESS

    def loop_read(self) -> int:
        """Handle what the broker sent, in order; nothing after a lost connection."""
        while self.inbound and self.socket() is not None:
            self.inbound.popleft()()
        return mqtt.MQTT_ERR_SUCCESS

    def loop_misc(self) -> int:  # keep-alive: a broker that answers PINGREQ
        return mqtt.MQTT_ERR_SUCCESS

    def disconnect(self) -> int:
        self.disconnected = True
        return mqtt.MQTT_ERR_SUCCESS

    # -- the broker's side: queued, read in the link's next pass over the socket --------
    def connack(self, rc: int = 0) -> "FakeClient":
        self.inbound.append(lambda: self.on_connect(
            self, None, ConnectFlags(session_present=False),
            convert_connack_rc_to_reason_code(rc), Properties(PacketTypes.CONNACK)))
        return self

    def suback(self, mid: Optional[int] = None, code: int = 1) -> "FakeClient":
        """A SUBACK granting (CODE 0, 1) or refusing (0x80) every filter of SUBSCRIBE MID;
        None: of every SUBSCRIBE sent so far."""
        for sub_mid, filters in self.subscribed:
            if mid is None or sub_mid == mid:
                codes = [_code(mqtt.SUBACK, code)] * len(filters)
                self.inbound.append(lambda m=sub_mid, c=codes: self.on_subscribe(
                    self, None, m, c, Properties(PacketTypes.SUBACK)))
        return self

    def puback(self, *mids: int) -> "FakeClient":
        for mid in mids:
            self.inbound.append(lambda m=mid: self.on_publish(
                self, None, m, _code(mqtt.PUBACK, 0), Properties(PacketTypes.PUBACK)))
        return self

    def message(self, topic, payload: bytes) -> "FakeClient":
        """A PUBLISH from the broker; TOPIC as bytes may be anything (not UTF-8...)."""
        msg = mqtt.MQTTMessage(mid=0, topic=topic if isinstance(topic, bytes)
                               else topic.encode())
        msg.payload = payload
        self.inbound.append(lambda: self.on_message(self, None, msg))
        return self

    def lose(self, refused=None) -> "FakeClient":
        """The connection breaks while reading, as paho's _loop_rc_handle handles it:
        the socket is closed (on_socket_close sees it gone), then on_disconnect."""
        def lost() -> None:
            self.refused = refused
            sock = self.sock
            self.on_socket_close(self, None, sock)
            sock.close()
            self.on_disconnect(self, None, DisconnectFlags(False),
                               _code(mqtt.DISCONNECT, 0x80), Properties(PacketTypes.DISCONNECT))
        self.inbound.append(lost)
        return self

    def unacked(self) -> List[int]:
        """Mids of the written QoS 1 publishes (acknowledged or not)."""
        return [p.mid for p in self.written if p.qos > 0]

    def close(self) -> None:
        self.sock.close()
        self.broker_end.close()


# -- the link, wired ----------------------------------------------------------------------

# Deadlines short enough to read in a test (the clock is fake: nothing waits for them).
DEADLINES = Deadlines(connack=5.0, suback=5.0, puback=30.0, request=10.0)


class LinkRig:
    """The real Link (broker_link.main) in-process: a certstore of two certificates
    (`aaaa` preferred, `bbbb`), a FakeLoop with the link's after-each pass, a FakeMailbox
    with the link's dispatch table, a FakeClient per connection attempt (`clients`),
    and backoff without randomness (each wait is its ceiling)."""

    def __init__(self, tmp_path, monkeypatch, deadlines: Deadlines = DEADLINES,
                 args: Sequence[str] = (),
                 peers: Sequence[str] = ("applier", "msg0"), make_client=None):
        store = tmp_path / "certstore"
        for cert_id in ("aaaa", "bbbb"):
            (store / cert_id).mkdir(parents=True)
            for suffix in ("certificate.pem.crt", "private.pem.key"):
                (store / cert_id / f"{cert_id}-{suffix}").write_text("x")
        (store / "endpoint.txt").write_text("broker.example:8883\n")
        os.symlink("aaaa", store / "preferred")
        self.store = store
        self.config = cli.parse(["--clientid=dev1", "--cacert=/ca.pem",
                                 f"--certstore={store}", "--updates=dev1:/nowhere", *args])
        self.loop = FakeLoop()
        self.mailbox = FakeMailbox("link")
        self.clients: List[FakeClient] = []

        def new_client(*_args, **_kwargs) -> FakeClient:
            if make_client is not None:
                make_client()  # may raise, as session.new_client does
            client = FakeClient()
            self.clients.append(client)
            return client

        monkeypatch.setattr(link_main, "new_client", new_client)
        # Jitter drawn at its ceiling: the same waits on every run (a draw near 0 would
        # reconnect inside a test's advance() now and then).
        jittered = backoff.delay
        monkeypatch.setattr(backoff, "delay", lambda attempt, **options: jittered(
            attempt, **{**options, "uniform": lambda low, high: high}))
        context = role_context(self.config, "link", peers, self.loop, self.mailbox,
                               rundir=str(tmp_path))
        self.link = link_main.Link(context, clock=self.loop.clock, deadlines=deadlines)
        self.loop.after_each(self.link.after_each_pass)  # as run() wires it
        attach_mailbox(self.loop, self.mailbox, self.link.handlers())

    @property
    def client(self) -> FakeClient:
        return self.clients[-1]

    def read(self, client: Optional[FakeClient] = None) -> None:
        """A pass in which the client's socket polled readable: the link reads what the
        broker queued."""
        client = client or self.client
        self.loop.readable(client.fd)

    def deliver(self, sender: str, *messages) -> None:
        """A pass in which MESSAGES from SENDER are in the link's mailbox."""
        for message in messages:
            self.mailbox.deliver(sender, message)
        self.loop.readable(self.mailbox.socket)

    def reconnect(self) -> FakeClient:
        """Let time pass until the link's next connection attempt (after its backoff)."""
        count = len(self.clients)
        while len(self.clients) == count and not self.loop.stopping:
            due = self.loop.next_due()
            assert due is not None, "the link will never connect again"
            self.loop.advance(due - self.loop.now)
        return self.client

    def up(self) -> FakeClient:
        """Connect, CONNACK, every SUBACK: the link is UP on a new client."""
        if self.link.state == link_main.WAITING and not self.clients:
            self.link.connect()
        client = self.client
        self.read(client.connack())
        self.read(client.suback())
        assert self.link.state == link_main.UP
        return client

    def link_states(self, peer: str = "applier") -> List[bool]:
        return [m.up for m in self.mailbox.sent_to(peer, LinkState)]

    def close(self) -> None:
        for client in self.clients:
            client.close()

