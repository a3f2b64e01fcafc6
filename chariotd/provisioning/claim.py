"""Fleet provisioning by claim (IOT_CORE.md section 3), inside the link process.

A provisioning *session* gets the device a new certificate: at first boot when the
certstore holds none, or on the `reprovision` command while the link stays connected
with its current one. Each *attempt* is a second MQTT connection, made with the
claim certificate (client id `<clientid>-fp`) and driven by the link's poll loop like
the link's own; no threads, no waits but paho's connect. An attempt goes

    CONNECTING   CONNECT sent, CONNACK awaited
    SUBSCRIBING  the four accepted/rejected topics, SUBACK awaited (before any request)
    CREATING     CreateKeysAndCertificate, or CreateCertificateFromCsr with `"csr": true`
                 (the key is made here and never leaves the device)
    REGISTERING  RegisterThing with the template and parameters
    FINISHING    certificate stored (Certstore.add) and made preferred; outfile; notifycmd

and a rejection, a timeout or a lost connection sends it to WAITING (backoff) and a new
attempt (the states, their checked transitions, the failure count, the backoff and
the deadlines: kernel/mqtt/states.py PROVISIONING, kernel/mqtt/connection.py). After
more than MAX_FAILURES failures in a row the claimstore's `preferred` moves to the
next claim certificate (when there are several) and the session gives up: at first
boot chariotd exits 1 after FAILURE_PAUSE seconds (a restart loop must not spin); a
`reprovision` request is rejected and the link carries on.

On success the link exits 0 and the supervisor restarts the tree with the new
certificate. After a reprovision the old certificates stay until the new one has
connected once (`Certstore.retire_replaced`), so a certificate that cannot connect
falls back to the old one through the link's usual failure rotation.

Where it runs: main.py hands this class to the link as the link's role options, so it
runs in the "chariotd: link" process on the link's loop (the reason is next to
`main._provisioner`). Its outfile and notify command run here too, an exception to
"the applier writes outfiles and runs commands": a tree without services has no
applier, and at first boot the link may only exit 0 (and the tree restart with the new
certificate) once the outfile is written and the notify command has finished; a marker
in the certstore (kernel/pending.py) redoes the command after a crash.

Private keys and ownership tokens are never logged.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import List, Optional, Tuple

import paho.mqtt.client as mqtt

from chariotd.provisioning import fleetprov
from chariotd.kernel import pending, safe_open
from chariotd.kernel.backoff import Backoff
from chariotd.kernel.mqtt import states
from chariotd.kernel.mqtt.states import (
    CONNECTING, CREATING, FINISHING, IDLE, REGISTERING, SUBSCRIBING, WAITING)
from chariotd.kernel.mqtt.connection import MAX_FAILURES, Connection
from chariotd.kernel.mqtt.driver import ClientDriver
from chariotd.kernel.mqtt.session import CaProblem, blames_certificate, new_client
from chariotd.certstore import Certificate, Certstore, CertstoreError
from chariotd.provisioning.fleetprov import FleetProv, FleetProvError
from chariotd.formats import FormatError
from chariotd.kernel.fsutil import remove_stale_temps, write_file_atomic
from chariotd.ipc.messages import Applied, Command, Rejected
from chariotd.kernel.runtime import RoleContext

log = logging.getLogger(__name__)

FIRST_BOOT, REPROVISION = "first boot", "reprovision"

RESPONSE_TIMEOUT = 20.0   # for the CONNACK, the SUBACK and each response
KEEPALIVE = 60
MISC_INTERVAL = 5.0  # paho's keep-alive housekeeping
NOTIFY_TIMEOUT = 10.0
OUTFILE_MODE = 0o600  # a new provisioning outfile's; an existing one keeps its own
FAILURE_PAUSE = 30.0  # before exit 1 at first boot (failure_pause_from_environment)
# Answers to the commands watcher get this long to be acted on before the link exits.
ANSWER_GRACE = 0.5


def failure_pause_from_environment(environ) -> float:
    """FAILURE_PAUSE, or the test suite's CHARIOTD_FLEETPROV_PAUSE (devices never set it;
    see README, "Fleet provisioning"); read by main.py at start, never at import."""
    try:
        pause = float(environ.get("CHARIOTD_FLEETPROV_PAUSE") or FAILURE_PAUSE)
    except ValueError:
        return FAILURE_PAUSE
    return pause if 0 <= pause <= 3600 else FAILURE_PAUSE


def short(cert_id: str) -> str:
    return cert_id[:12]


class Provisioning:
    """Fleet provisioning for the link (made, and this module imported, only with
    --fleetprov)."""

    def __init__(self, context: RoleContext, certstore: Certstore, clock=time.monotonic,
                 backoff: Backoff = Backoff(), failure_pause: float = FAILURE_PAUSE,
                 response_timeout: float = RESPONSE_TIMEOUT):
        self.loop = context.loop
        self.mailbox = context.mailbox
        self.config = context.config
        self.certstore = certstore
        self.fleetprov: FleetProv = fleetprov.load(self.config.fleetprov)  # checked by the parent
        self.claimstore = Certstore(self.fleetprov.claimstore)
        # `.provisioning.notify-pending` in the certstore while the notify command of a
        # stored certificate has not finished (chariotd/kernel/pending.py)
        self.notify_marker = str(self.certstore.path / "provisioning")
        self.loop.after_each(self.after_each_pass)
        self.client_id = f"{self.config.clientid}-fp"
        self.connection = Connection("provisioning", states.PROVISIONING, IDLE, self.loop,
                                     clock, backoff)
        self.failure_pause = failure_pause
        self.response_timeout = response_timeout
        self.purpose: Optional[str] = None
        self.requests: List[Tuple[str, int]] = []  # reprovision commands to answer
        self.client: Optional[mqtt.Client] = None
        self.driver = ClientDriver(self.loop, MISC_INTERVAL)
        self.subscribe_mid: Optional[int] = None
        self.claim_id = ""
        self.key_pem: Optional[str] = None
        self.created: Optional[fleetprov.Created] = None
        self.spawner = None

    # -- entry points -------------------------------------------------------------------
    def sweep(self) -> None:
        """At start: remove the temp names a run killed mid-write left beside the
        outfile and the claimstore's `preferred` (a read-only claimstore is fine)."""
        paths = [self.claimstore.path / "preferred"]
        if self.fleetprov.outfile and self.fleetprov.outfile != "/dev/null":
            paths.append(self.fleetprov.outfile)
        for path in paths:
            for name in remove_stale_temps(path):
                log.info("provisioning: removed %s, left by a run killed while writing", name)
        if pending.is_marked(self.notify_marker) and self.certstore.preferred() is not None:
            log.info("provisioning: the notify command did not finish before chariotd "
                     "stopped; running it again")
            self._run_notify(lambda: None)

    def first_boot(self) -> None:
        log.info("provisioning: no certificate in the certstore %s; provisioning with "
                 "template %s", self.certstore.path, self.fleetprov.template)
        self._begin(FIRST_BOOT)

    def reprovision(self, sender: str, command: Command) -> None:
        """The `reprovision` command (the link refuses it without --fleetprov)."""
        self.requests.append((sender, command.id))
        if self.state != IDLE:
            log.info("provisioning: reprovision requested while provisioning is under way; "
                     "answered when it ends")
            return
        log.info("provisioning: reprovision requested; getting a new certificate with "
                 "template %s while the link stays up", self.fleetprov.template)
        self._begin(REPROVISION)

    def _begin(self, purpose: str) -> None:
        self.purpose = purpose
        self.failures.clear()
        self._attempt()

    # -- one attempt --------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self.connection.state

    @property
    def failures(self):
        return self.connection.failures

    def _enter(self, state: str) -> None:
        log.debug("provisioning: %s -> %s", self.state, state)
        self.connection.enter(state)

    def _claim_certificate(self) -> Optional[Certificate]:
        try:
            return self.claimstore.preferred()
        except OSError as error:  # e.g. a read-only claimstore without `preferred`
            log.warning("provisioning: cannot update the claimstore's preferred link: %s",
                        error)
        try:
            certificates = self.claimstore.certificates()
        except CertstoreError as error:
            log.error("provisioning: %s", error)
            return None
        return certificates[0] if certificates else None

    def _attempt(self) -> None:
        claim = self._claim_certificate()
        if claim is None:
            self._attempt_failed(f"no claim certificate in {self.claimstore.path}")
            return
        try:
            host, port = self.claimstore.endpoint()
        except CertstoreError as error:
            self._attempt_failed(str(error))
            return
        self.claim_id = claim.id
        self.key_pem, csr_pem, self.created = None, None, None
        if self.fleetprov.csr:
            from chariotd.provisioning.keys import new_key_and_csr
            self.key_pem, csr_pem = new_key_and_csr(self.config.clientid)
        self.create_payload = fleetprov.create_payload(csr_pem)
        self.connection.connecting()
        try:
            client = new_client(self.client_id, self.config.cacert, claim, port,
                                proxy=self.config.http_proxy)
        except CaProblem as error:  # never the claim certificate's fault
            self._attempt_failed(str(error), charge=False)
            return
        except (OSError, ssl.SSLError) as error:
            self._attempt_failed(f"claim certificate {short(claim.id)} is unusable: {error}")
            return
        client.on_connect = self._later(self._on_connect)
        client.on_subscribe = self._later(self._on_subscribe)
        client.on_message = self._later(self._on_message)
        client.on_disconnect = self._later(self._on_disconnect)
        client.on_socket_close = self._on_socket_close
        self.client = client
        self._enter(CONNECTING)
        self._deadline("CONNACK")
        log.info("provisioning: connecting to %s:%d as %s with claim certificate %s",
                 host, port, self.client_id, short(claim.id))
        try:
            client.connect(host, port, keepalive=KEEPALIVE)
        except (OSError, ssl.SSLError, ssl.CertificateError, ValueError) as error:
            self._attempt_failed(f"cannot connect to {host}:{port} with claim certificate "
                                 f"{short(claim.id)}: {error}",
                                 charge=blames_certificate(error))
            return
        if self.client is not client or not self.driver.attach(client):
            return  # refused while sending CONNECT: the disconnect callback handled it

    def _deadline(self, what: str) -> None:
        """The answer WHAT is owed within `response_timeout` in this state."""
        self.connection.expect(what, self.response_timeout, self._attempt_failed)

    def _publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._attempt_failed(f"cannot publish to {topic}: {mqtt.error_string(info.rc)}")

    @property
    def create_name(self) -> str:
        return "CreateCertificateFromCsr" if self.fleetprov.csr else "CreateKeysAndCertificate"

    # -- paho callbacks -----------------------------------------------------------------
    def _later(self, handler):
        """Run HANDLER on the next pass of the loop, outside paho's callback: paho holds
        a lock during callbacks that a DISCONNECT written from inside one would need."""
        def callback(client, *args) -> None:
            self.loop.call_later(0, lambda: handler(client, *args))
        return callback

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self.client or self.state != CONNECTING:
            return
        if reason_code.is_failure:
            self._attempt_failed(f"connection refused: {reason_code}")
            return
        self._enter(SUBSCRIBING)
        self._deadline("SUBACK")
        result, self.subscribe_mid = client.subscribe(
            [(topic, 1) for topic in self.fleetprov.response_filters()])
        if result != mqtt.MQTT_ERR_SUCCESS:
            self._attempt_failed(f"cannot subscribe: {mqtt.error_string(result)}")

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if client is not self.client or self.state != SUBSCRIBING or mid != self.subscribe_mid:
            return
        if any(code.is_failure for code in reason_codes):
            self._attempt_failed("the broker refused the subscription to the provisioning "
                                 "responses")
            return
        log.info("provisioning: asking for a certificate (%s%s)", self.create_name,
                 "; the private key stays on the device" if self.fleetprov.csr else "")
        self._enter(CREATING)
        self._deadline(f"answer to {self.create_name}")
        self._publish(self.fleetprov.create_topic, self.create_payload)

    def _on_message(self, client, userdata, message) -> None:
        if client is not self.client:
            return
        topic, payload = message.topic, message.payload
        create, register = self.fleetprov.create_topic, self.fleetprov.register_topic
        if self.state == CREATING and topic == f"{create}/accepted":
            self._created(payload)
        elif self.state == CREATING and topic == f"{create}/rejected":
            self._attempt_failed(f"{self.create_name} rejected: "
                                 f"{fleetprov.describe_rejection(payload)}")
        elif self.state == REGISTERING and topic == f"{register}/accepted":
            self._registered(payload)
        elif self.state == REGISTERING and topic == f"{register}/rejected":
            self._attempt_failed(f"RegisterThing rejected: "
                                 f"{fleetprov.describe_rejection(payload)}")
        else:
            log.debug("provisioning: ignored a message on %s while %s", topic, self.state)

    def _created(self, payload: bytes) -> None:
        try:
            created = fleetprov.parse_created(payload, with_key=not self.fleetprov.csr)
        except FleetProvError as error:
            self._attempt_failed(str(error))
            return
        if not self.fleetprov.csr:
            self.key_pem = created.private_key
        from chariotd.provisioning.keys import certificate_fits_key
        if not certificate_fits_key(created.certificate_pem, self.key_pem):
            self._attempt_failed(f"{self.create_name}: the certificate does not fit the key")
            return
        self.created = created
        log.info("provisioning: certificate %s issued; registering the thing with template %s",
                 short(created.certificate_id), self.fleetprov.template)
        self._enter(REGISTERING)
        self._deadline("answer to RegisterThing")
        self._publish(self.fleetprov.register_topic, fleetprov.register_payload(
            created.ownership_token, self.fleetprov.parameters))

    def _registered(self, payload: bytes) -> None:
        try:
            registered = fleetprov.parse_registered(payload)
        except FleetProvError as error:
            self._attempt_failed(str(error))
            return
        self._close()
        self._enter(FINISHING)
        created, key_pem = self.created, self.key_pem
        self.created = self.key_pem = None
        if self.fleetprov.notifycmd:  # made durable by the certstore's directory fsync
            pending.mark(self.notify_marker)
        try:
            others = [c.id for c in self.certstore.certificates()
                      if c.id != created.certificate_id]
            self.certstore.add(created.certificate_id, created.certificate_pem.encode(),
                               key_pem.encode())
            if others:
                self.certstore.mark_replacing(created.certificate_id)
            self.certstore.set_preferred(created.certificate_id)
        except (OSError, CertstoreError) as error:
            self._attempt_failed(f"cannot store the certificate: {error}")
            return
        log.info("provisioning: thing %s registered; certificate %s stored in %s and "
                 "preferred", registered.thing, short(created.certificate_id),
                 self.certstore.path)
        self._write_outfile(registered)
        self._notify()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self.client:
            return
        if self.state == CONNECTING:  # e.g. the broker refused the claim certificate
            self._attempt_failed(f"connection closed before the CONNACK ({reason_code}) "
                                 f"with claim certificate {short(self.claim_id)}")
        else:
            self._attempt_failed(f"connection lost ({reason_code})")

    def _on_socket_close(self, client, userdata, sock) -> None:
        if client is self.client:
            self.driver.detach()

    def after_each_pass(self) -> None:
        self.driver.after_each_pass()

    def _close(self) -> None:
        """End the claim connection (a DISCONNECT when it is up), forget its timers."""
        client, self.client = self.client, None
        self.connection.cancel_deadline()
        self.connection.cancel_retry()
        self.driver.detach()
        if client is None:
            return
        if self.state in (SUBSCRIBING, CREATING, REGISTERING):
            try:
                client.disconnect()
                client.loop_write()
            except (OSError, ValueError):
                pass
        sock = client.socket()
        if sock is not None:
            sock.close()

    # -- outcomes -----------------------------------------------------------------------
    def _attempt_failed(self, reason: str, charge: bool = True) -> None:
        """One attempt failed; past MAX_FAILURES charged ones in a row, give up. A CA
        problem (not CHARGE) only lengthens the backoff: it never rotates the claim
        certificates nor ends provisioning."""
        self._close()
        self.created = self.key_pem = None
        if self.connection.fail(charge):
            self._give_up(reason)
            return
        wait = self.connection.retry_delay()
        log.warning("provisioning: %s; retrying in %.1f s (%s)", reason, wait,
                    f"failure {self.failures.charged} of {MAX_FAILURES}" if charge
                    else "not counted against the claim certificate")
        log.debug("provisioning: %s -> %s", self.state, WAITING)
        self.connection.wait(wait, self._attempt)

    def _give_up(self, reason: str) -> None:
        rotated = None
        try:
            rotated = self.claimstore.rotate()
        except (OSError, CertstoreError) as error:
            log.warning("provisioning: cannot rotate the claim certificates: %s", error)
        log.error("provisioning: %s; %d failures in a row%s", reason, self.failures.charged,
                  f"; preferred claim certificate is now {short(rotated.id)}" if rotated else "")
        self._enter(IDLE)
        self._answer(lambda request_id: Rejected(id=request_id,
                                                 reason=f"provisioning failed: {reason}"))
        if self.purpose == FIRST_BOOT:
            log.error("provisioning: giving up; exiting in %g s", self.failure_pause)
            self.loop.call_later(self.failure_pause, lambda: self.loop.stop(1))

    def _write_outfile(self, registered: fleetprov.Registered) -> None:
        path = self.fleetprov.outfile
        if path is None or path == "/dev/null":
            return
        try:
            text = fleetprov.outfile_text(self.fleetprov, registered)
            # The old file's permission bits (from the file itself, never through a
            # link, 07000 dropped); a new one is 0600: it may name the device's thing.
            write_file_atomic(path, text.encode("utf-8"),
                              mode=safe_open.permission_bits(path, OUTFILE_MODE))
        except (FormatError, OSError) as error:
            log.error("provisioning: cannot write the outfile %s: %s", path, error)
            return
        log.info("provisioning: wrote %s", path)

    def _notify(self) -> None:
        if not self.fleetprov.notifycmd:
            self._succeeded()
            return
        self._run_notify(self._succeeded)

    def _run_notify(self, then) -> None:
        """Run the notify command; its marker goes when it has finished, then THEN."""
        from chariotd.kernel.spawn import Spawner, shown
        if self.spawner is None:
            self.spawner = Spawner(self.loop)

        def done(result) -> None:
            if result.ok:
                log.info("provisioning: notify command finished")
            else:
                log.error("provisioning: notify command %s%s", result.describe(),
                          f": {shown(result.stderr)}" if result.stderr.strip() else "")
            pending.clear(self.notify_marker)
            then()

        log.info("provisioning: running the notify command")
        self.spawner.run(["/bin/sh", "-c", self.fleetprov.notifycmd], done,
                         timeout=NOTIFY_TIMEOUT)

    def _succeeded(self) -> None:
        self._enter(IDLE)
        answered = self._answer(lambda request_id: Applied(id=request_id))
        log.info("provisioning: done; exiting so that chariotd restarts with the new "
                 "certificate")
        if answered:  # let the commands watcher take the request file out of new/ first
            self.loop.call_later(ANSWER_GRACE, lambda: self.loop.stop(0))
        else:
            self.loop.stop(0)

    def _answer(self, make) -> bool:
        requests, self.requests = self.requests, []
        for sender, request_id in requests:
            self.mailbox.send(sender, make(request_id))
        return bool(requests)
