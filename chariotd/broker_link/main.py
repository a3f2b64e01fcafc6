"""The link role: keeps one MQTT connection to the endpoint and publishes for the
watchers. States: WAITING (backoff timer running), CONNECTING (CONNECT sent, no
CONNACK yet), SUBSCRIBING (a SUBACK missing), UP (kernel/mqtt/states.py: LINK).
Every transition goes through `_enter` and is checked (kernel/mqtt/connection.py),
which also keeps the failures in a row, the backoff and the deadline in each state.

Every wait on the broker has a deadline (deadlines.py): no CONNACK or SUBACK in time
is a connection failure; no PUBACK for a while with publishes outstanding drops the
connection (they are published again after the reconnect). An inbound packet or
message larger than AWS allows is refused (session.py: MAX_INBOUND_*), logged.

More than MAX_FAILURES consecutive connection failures rotate the certstore's
`preferred` certificate (when there are several) and end the process with status 1;
the supervisor then restarts the tree, which tries the next certificate. A failure
the certificate cannot have caused (a CA problem, session.blames_certificate) is
retried with backoff but never counted toward that.
"""

from __future__ import annotations

import logging
import os
import select
import ssl
import time
from typing import Dict, List, Optional, Set, Tuple

import paho.mqtt.client as mqtt

from chariotd.kernel.backoff import Backoff
from chariotd.kernel.mqtt import states
from chariotd.kernel.mqtt.connection import MAX_FAILURES, Connection
from chariotd.kernel.mqtt.deadlines import Deadlines, from_environment
from chariotd.kernel.mqtt.driver import ClientDriver
from chariotd.broker_link.routes import Router
from chariotd.kernel.mqtt.session import (
    MAX_INBOUND_PACKET, MAX_INBOUND_PAYLOAD, CaProblem, blames_certificate, new_client)
from chariotd.broker_link.windows import Windows
from chariotd.broker_link.shadow_topics import request_topic
from chariotd.certstore import Certstore, CertstoreError
from chariotd.config import ThingShadow
from chariotd.ipc.messages import (Command, LinkHeartbeat, LinkState, Publish, Published,
                                   PublishFailed, Rejected, RequestTimeout, ShadowRequest)
from chariotd.kernel.runtime import RoleContext

log = logging.getLogger(__name__)

WAITING, CONNECTING, SUBSCRIBING, UP = (states.WAITING, states.CONNECTING,
                                        states.SUBSCRIBING, states.UP)

NO_CERTIFICATE_PAUSE = 10.0
STOP_FLUSH = 0.5  # seconds the DISCONNECT may take at a stop (supervisor.GRACE is 1 s)
ANSWER_DELAY = 0.02  # the longest an acknowledgement waits to be told to its watcher
SHOWN_TOPIC = 120  # characters of a refused message's topic put in the log line


def shown_topic(message) -> str:
    """MESSAGE's topic for a log line: escaped (no control characters), shortened."""
    try:
        topic = message.topic
    except UnicodeDecodeError:
        return "a topic that is not UTF-8"
    return ascii(topic[:SHOWN_TOPIC]) + ("..." if len(topic) > SHOWN_TOPIC else "")


class Link:
    def __init__(self, context: RoleContext, clock=time.monotonic,
                 deadlines: Deadlines = Deadlines(), backoff: Backoff = Backoff()):
        self.context = context
        self.config = context.config
        self.loop = context.loop
        self.mailbox = context.mailbox
        self.clock = clock
        self.certstore = Certstore(self.config.certstore)
        # With --fleetprov, main.py hands the link a provisioning factory as its role
        # options (the link never imports the provisioning role): see main.build_roles.
        make_provisioning = context.role.options
        self.provisioning = (make_provisioning(context, self.certstore, backoff=backoff)
                             if make_provisioning is not None else None)
        self.host, self.port = self.certstore.endpoint()
        self.router = Router(self.config, self.mailbox)
        self.connection = Connection("link", states.LINK, WAITING, self.loop, clock, backoff)
        self.deadlines = deadlines
        self.client: Optional[mqtt.Client] = None
        self.driver = ClientDriver(self.loop, max(0.5, min(5.0, self.config.keepalive / 4)))
        self.certificate = None
        self.inflight: Dict[int, Tuple[str, int]] = {}  # mid -> (sender, request id)
        self.windows = Windows()  # each watcher's window and its waiting messages
        self.acks: Dict[str, List[int]] = {}  # acknowledged this pass, per watcher
        self.freed: Set[str] = set()  # watchers whose window got room this pass
        self.answer_timer = None
        self.unacked: Set[int] = set()  # QoS 1 publishes (watchers', shadow requests')
        self.last_ack = 0.0  # when the last PUBACK came (or the first publish went out)
        self.puback_timer = None
        self.last_will = None
        if self.config.last_will_topic is not None:
            self.last_will = (self.config.last_will_topic,
                              self.config.last_will_payload.encode())

    # -- state -------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self.connection.state

    @property
    def failures(self):
        return self.connection.failures

    def _enter(self, state: str) -> None:
        was_up = self.state == UP
        self.connection.enter(state)
        if (state == UP) != was_up:
            self._broadcast(LinkState(up=state == UP, client_id=self.config.clientid))

    def _broadcast(self, message) -> None:
        for peer in self.context.peers():
            self.mailbox.send(peer, message)
        if self.context.parent_mailbox:
            self.mailbox.send(self.context.parent_mailbox, message)

    # -- health, for the parent's systemd watchdog -------------------------------------
    def healthy(self) -> bool:
        """False when CONNECTING (no CONNACK) or SUBSCRIBING (no SUBACK) has lasted
        twice its deadline: the timer that should have ended it did not fire. The
        parent then stops feeding systemd's watchdog."""
        deadline = max(self.deadlines.connack, self.deadlines.suback)
        return not (self.state in (CONNECTING, SUBSCRIBING)
                    and self.clock() - self.connection.since > 2 * deadline)

    def heartbeat(self) -> None:
        self.mailbox.send(self.context.parent_mailbox,
                          LinkHeartbeat(up=self.state == UP, healthy=self.healthy()))
        self.loop.call_later(self.context.heartbeat_interval, self.heartbeat)

    # -- connecting ----------------------------------------------------------------
    def start(self) -> None:
        try:  # a kill mid-write (provisioning, rotation) may have left temp names
            removed = self.certstore.sweep()
        except OSError as error:
            log.warning("certstore: cannot remove what an earlier run left: %s", error)
        else:
            if removed:
                log.info("certstore: removed what an earlier run left: %s", ", ".join(removed))
        if self.provisioning is not None:
            self.provisioning.sweep()
        if self.certstore.preferred() is None:
            if self.provisioning is not None:
                self.provisioning.first_boot()  # exits 0 when done, 1 when it gives up
                return
            log.error("no certificate in certstore %s and no fleet provisioning; "
                      "exiting in %d s", self.certstore.path, NO_CERTIFICATE_PAUSE)
            self.loop.call_later(NO_CERTIFICATE_PAUSE, lambda: self.loop.stop(1))
            return
        self.connect()

    def connect(self) -> None:
        try:
            self.certificate = self.certstore.preferred()
        except (CertstoreError, OSError) as error:
            log.error("certstore: %s", error)
            self.certificate = None
        if self.certificate is None:
            self._failed("no usable certificate in the certstore")
            return
        self.connection.connecting()
        try:
            client = new_client(self.config.clientid, self.config.cacert, self.certificate,
                                self.port, self.last_will, self.config.http_proxy)
        except CaProblem as error:  # not the certificate's fault: never rotates it
            self._failed(str(error), charge=False)
            return
        except (OSError, ssl.SSLError) as error:  # e.g. a key that does not match
            self._failed(f"certificate {self.certificate.id[:12]} is unusable: {error}")
            return
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_socket_close = self._on_socket_close
        self.client = client
        self._enter(CONNECTING)
        log.info("connecting to %s:%d with certificate %s", self.host, self.port,
                 self.certificate.id[:12])
        try:
            client.connect(self.host, self.port, keepalive=self.config.keepalive)
        except (OSError, ssl.SSLError, ssl.CertificateError, ValueError) as error:
            self.client = None
            self._failed(f"cannot connect to {self.host}:{self.port}: {error}",
                         charge=blames_certificate(error))
            return
        if self.client is not client or not self.driver.attach(client):
            return  # refused while sending CONNECT: the disconnect callback handled it
        self._expect("CONNACK", self.deadlines.connack)

    def _count_failure(self, reason: str, charge: bool = True) -> bool:
        """One more connection failure or request timeout in a row; past MAX_FAILURES
        charged ones rotate `preferred` and end the process (True)."""
        if not self.connection.fail(charge):
            return False
        rotated = self.certstore.rotate()
        if rotated is not None:
            log.error("%s; %d connection failures in a row; preferred certificate is "
                      "now %s; exiting", reason, self.failures.charged, rotated.id[:12])
        else:
            log.error("%s; %d connection failures in a row; exiting", reason,
                      self.failures.charged)
        self.loop.stop(1)
        return True

    def request_timed_out(self, sender: str, timeout: RequestTimeout) -> None:
        if not self._count_failure(f"{timeout.what} timed out"):
            log.warning("%s timed out (failure %d of %d)", timeout.what,
                        self.failures.charged, MAX_FAILURES)

    def _failed(self, reason: str, charge: bool = True) -> None:
        if self._count_failure(reason, charge):
            return
        wait = self.connection.retry_delay()
        if charge:
            log.warning("%s; retrying in %.1f s (failure %d of %d)", reason, wait,
                        self.failures.charged, MAX_FAILURES)
        else:
            log.warning("%s; retrying in %.1f s (not counted against the certificate)",
                        reason, wait)
        self._wait(wait)

    def _wait(self, seconds: float) -> None:
        self._enter(WAITING)  # through _enter: the watchers hear when the link was up
        self.connection.retry_after(seconds, self.connect)

    def _expect(self, what: str, seconds: float) -> None:
        """The broker owes WHAT on this connection in this state within SECONDS; past
        that the connection is dropped and counted as a failure."""
        self.connection.expect(what, seconds, self._drop)

    def _cancel_deadline(self) -> None:
        self.connection.cancel_deadline()

    def _drop(self, reason: str) -> None:
        """Abandon the current connection, counted as a failure (its socket is closed
        here: no clean DISCONNECT, so the broker sends the last will)."""
        client = self.client
        if client is not None:
            sock = client.socket()
            self._lost(reason, failure=True)  # forgets the fd before it is closed
            if sock is not None:
                sock.close()

    # -- paho callbacks -----------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self.client:  # a client already dropped: its news is stale
            return
        self._cancel_deadline()
        if reason_code.is_failure:
            self._lost(f"connection refused: {reason_code}")
            return
        log.info("connected to %s:%d as %s", self.host, self.port, self.config.clientid)
        self._retire_replaced()  # after a reprovision
        if self.router.subscribe(client):
            self._enter(UP)
        else:
            self._enter(SUBSCRIBING)
            self._expect("SUBACK", self.deadlines.suback)

    def _retire_replaced(self) -> None:
        """Connected with a certificate a reprovision added: the certificates it
        replaced are removed now."""
        if self.certificate is None:
            return
        try:
            removed = self.certstore.retire_replaced(self.certificate.id)
        except (OSError, CertstoreError) as error:
            log.warning("certstore: cannot remove the replaced certificates: %s", error)
            return
        if removed:
            log.info("certificate %s connected; removed the certificates it replaced: %s",
                     self.certificate.id[:12], ", ".join(i[:12] for i in removed))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if client is not self.client or not self.router.subscribed(mid, reason_codes):
            return
        self._cancel_deadline()
        if self.router.shadow_refused:
            # Without its shadow responses the link cannot do its work; the policy
            # that refused them is the certificate's: counted, and may rotate it.
            self._drop("the broker refused the subscription to the shadow responses")
        else:
            self._enter(UP)

    def _on_message(self, client, userdata, message) -> None:
        if client is not self.client:
            return
        payload = message.payload
        if len(payload) > MAX_INBOUND_PAYLOAD:  # AWS never sends one: a hostile broker
            log.warning("dropped a message of %d bytes on %s: more than %d bytes",
                        len(payload), shown_topic(message), MAX_INBOUND_PAYLOAD)
            return
        if self.state == UP:
            self.failures.clear()  # an answer: the link works
        try:
            topic = message.topic
        except UnicodeDecodeError:  # a broker should refuse such a topic; never crash
            log.warning("ignored a message whose topic is not UTF-8")
            return
        self.router.route(topic, payload)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self.client:
            return
        refused = getattr(client, "refused", None)
        if refused is not None:
            kind, length = refused
            self._lost(f"dropped the connection: the broker sent a packet of {length} bytes "
                       f"(type 0x{kind:02x}), more than {MAX_INBOUND_PACKET}; its body was "
                       f"not read", charge=False)
        else:
            self._lost(f"connection lost ({reason_code})")

    def _on_socket_close(self, client, userdata, sock) -> None:
        if client is self.client:
            self.driver.detach()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if client is not self.client:  # a mid of a dropped client is not ours now
            return
        # Packets are only queued by publish() and written after the pass (driver.py),
        # so every publish of a watcher is in `inflight` by the time it is finished;
        # anything else (a shadow request's PUBACK) is nobody's to answer.
        if mid in self.unacked:
            self.unacked.discard(mid)
            self.last_ack = self.clock()
        request = self.inflight.pop(mid, None)
        if request is None:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("acknowledged mid %d", mid)
            return
        sender, request_id = request
        if log.isEnabledFor(logging.DEBUG):
            log.debug("acknowledged mid %d (%s request %d)", mid, sender, request_id)
        self.windows.done(sender)
        self.freed.add(sender)
        self.acks.setdefault(sender, []).append(request_id)  # sent after this pass

    def _lost(self, reason: str, failure: Optional[bool] = None, charge: bool = True) -> None:
        """The connection is gone. It counts as a failure (FAILURE None: when it never
        came up) and then, when CHARGE, against the certificate."""
        was = self.state
        self.driver.detach()
        self._cancel_deadline()
        if self.puback_timer is not None:
            self.puback_timer.cancel()
            self.puback_timer = None
        self.unacked.clear()
        self.client = None
        self._answer()  # before the watchers hear that the link is down
        self.inflight.clear()
        self.windows.clear()
        self.freed.clear()
        if was not in (CONNECTING, SUBSCRIBING, UP):
            return
        if failure or (failure is None and was != UP):
            self._failed(reason, charge)
            return
        log.warning("%s", reason)
        self._wait(self.connection.retry_delay(after_failure=False))

    # -- the PUBACK deadline ---------------------------------------------------------------
    def _sent(self, mid: int) -> None:
        """A QoS 1 publish is out: its PUBACK is owed (deadlines.py: `puback`)."""
        if not self.unacked:
            self.last_ack = self.clock()  # the wait starts now
        self.unacked.add(mid)
        if self.puback_timer is None:
            self.puback_timer = self.loop.call_later(self.deadlines.puback, self._check_pubacks)

    def _check_pubacks(self) -> None:
        self.puback_timer = None
        if not self.unacked or self.client is None:
            return
        silent = self.clock() - self.last_ack
        if silent >= self.deadlines.puback:
            self._drop(f"no PUBACK for {silent:.0f} s with {len(self.unacked)} publishes "
                       f"unacknowledged; reconnecting to publish them again")
        else:
            self.puback_timer = self.loop.call_later(self.deadlines.puback - silent,
                                                     self._check_pubacks)

    def after_each_pass(self) -> None:
        self._release_freed()          # the freed slots are filled,
        self.driver.after_each_pass()  # what the pass queued goes out,
        while self.freed:              # (QoS 0 publishes are finished by that write)
            self._release_freed()
            self.driver.after_each_pass()
        if self.acks:                  # then the watchers hear what was acknowledged
            self._answer(everything=False)

    def _release_freed(self) -> None:
        freed, self.freed = self.freed, set()
        for sender in freed:
            self._release(sender)

    def _answer(self, everything: bool = True) -> None:
        """Tell the watchers what was acknowledged, one frame per watcher. A watcher
        with more than a window still waiting at the link is told later, with more
        ids in the frame, but within ANSWER_DELAY."""
        for sender in list(self.acks):
            if everything or not self.windows.busy(sender):
                self.mailbox.send(sender, Published(ids=self.acks.pop(sender)))
        if self.acks and self.answer_timer is None:
            self.answer_timer = self.loop.call_later(ANSWER_DELAY, self._answer_late)

    def _answer_late(self) -> None:
        self.answer_timer = None
        self._answer()

    # -- requests from the other roles ----------------------------------------------------
    def handlers(self):
        """The link's dispatch table: each message kind it receives -> its handler."""
        return {Command: self.on_command, Publish: self.publish,
                RequestTimeout: self.request_timed_out, ShadowRequest: self.shadow_request}

    def publish(self, sender: str, request: Publish) -> None:
        if self.state != UP or self.client is None:
            for request_id in request.ids:
                self._not_published(sender, request_id, "link is down", charge=False)
            return
        self.windows.add(sender, request.window, list(
            zip(request.ids, request.topics, request.payloads, request.qos)))
        self._release(sender)

    def _release(self, sender: str) -> None:
        """Publish SENDER's waiting messages while its window has room."""
        while True:
            items = self.windows.take(sender)
            if not items:
                return
            for item in items:
                self._publish_one(sender, *item)

    def _not_published(self, sender: str, request_id: int, reason: str, charge: bool) -> None:
        self.mailbox.send(sender, PublishFailed(id=request_id, reason=reason, charge=charge))

    def _publish_one(self, sender: str, request_id: int, topic: str, payload: bytes,
                     qos: int) -> None:
        client = self.client
        if self.state != UP or client is None:  # lost while releasing this window
            self._not_published(sender, request_id, "link is down", charge=False)
            return
        try:
            info = client.publish(topic, payload, qos=qos)
        except (ValueError, TypeError) as error:
            self.windows.done(sender)
            self._not_published(sender, request_id, str(error), charge=True)
            return
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            self.windows.done(sender)
            self._not_published(sender, request_id, "link is down", charge=False)
        elif info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.windows.done(sender)
            self._not_published(sender, request_id, mqtt.error_string(info.rc), charge=True)
        else:
            self.inflight[info.mid] = (sender, request_id)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("published %s request %d to %s, QoS %d: mid %d", sender,
                          request_id, topic, qos, info.mid)
            if qos > 0:
                self._sent(info.mid)

    def on_command(self, sender: str, command: Command) -> None:
        if command.name != "reprovision":
            reason = f"unknown command {command.name!r}"
        elif self.provisioning is None:
            log.warning("reprovision refused: chariotd runs without --fleetprov")
            reason = "reprovision needs --fleetprov"
        else:
            self.provisioning.reprovision(sender, command)
            return
        self.mailbox.send(sender, Rejected(id=command.id, reason=reason))

    def shadow_request(self, sender: str, request: ShadowRequest) -> None:
        if self.state != UP or self.client is None:
            log.debug("link down: dropped a shadow %s request", request.action)
            return  # the applier fetches again when the link comes back
        topic = request_topic(ThingShadow(request.thing, request.shadow), request.action)
        info = self.client.publish(topic, request.payload, qos=1)
        log.debug("shadow %s request to %s: mid %d, %s", request.action, topic, info.mid,
                  mqtt.error_string(info.rc))
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self._sent(info.mid)

    def stop(self) -> None:
        """An orderly stop (SIGTERM): a DISCONNECT, so the broker does not send the last
        will; said at info, not as a lost connection."""
        client, self.client = self.client, None
        if client is None or self.state != UP:
            return
        client.disconnect()
        if send_queued(client, STOP_FLUSH):
            log.info("disconnected: stopping")
        else:
            log.warning("stopping without a clean disconnect: the DISCONNECT did not go "
                        "out within %g s (the broker sends the last will)", STOP_FLUSH)


def send_queued(client: mqtt.Client, seconds: float, clock=time.monotonic) -> bool:
    """Write what CLIENT has queued, the DISCONNECT last, waiting at most SECONDS for
    its socket to take it. True once the DISCONNECT is out (paho then closes the
    socket)."""
    deadline = clock() + seconds
    while True:
        sock = client.socket()
        if sock is None:
            return True
        if client.loop_write() not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
            return client.socket() is None
        remaining = deadline - clock()
        if client.socket() is None or remaining <= 0:
            return client.socket() is None
        select.select([], [sock], [], min(remaining, 0.05))


def run(context: RoleContext) -> int:
    # The test suite's seams, read once as the role starts (devices never set them).
    link = Link(context, deadlines=from_environment(os.environ),
                backoff=Backoff.from_environment(os.environ))
    handlers = link.handlers()
    context.loop.after_each(link.after_each_pass)
    context.loop.add_reader(context.mailbox.socket,
                            lambda: context.mailbox.dispatch(handlers))
    link.start()
    if context.parent_mailbox and context.heartbeat_interval:
        link.heartbeat()
    try:
        return context.loop.run()
    finally:
        link.stop()
