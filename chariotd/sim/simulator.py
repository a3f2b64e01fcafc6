"""The whole local IoT Core in one object: Mosquitto plus the simulator service.

    sim = Simulator(tmp_path / "sim", port=0).start()     # port 0: a free port
    store = sim.device("dev1")                            # a ready chariotd certstore
    sim.set_desired("dev1", None, {"foo": {"a": 1}})     # as the cloud would
    sim.get_shadow("dev1")                                # the get/accepted document or None
    sim.create_job("dev1", {"operation": "reboot"})       # a QUEUED execution; notify fires
    sim.stop()                                            # nothing left running

Everything lives in DIR (layout in docs/sim.md); a restart on the same DIR keeps
shadows, provisioned things and certificates.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Callable, List, Optional

from chariotd.kernel.fsutil import write_file_atomic
from chariotd.sim import pki
from chariotd.sim.log import log
from chariotd.sim.mosquitto import DEFAULT_ACL, OPEN_ACL, SERVICE_USER, Mosquitto, free_port
from chariotd.sim.provisioning import Provisioning, acl_entries
from chariotd.sim.defender import DefenderOptions
from chariotd.sim.jobs import JobsOptions
from chariotd.sim.service import SimService, encode
from chariotd.sim.shadow_service import ShadowOptions
from chariotd.sim.store import Store
from chariotd.sim.templates import load_templates, write_default
from chariotd.sim.topics import THING_NAME, shadow_prefix, tunnel_notify_topic

HOST = "127.0.0.1"
DEFAULT_PORT = 8883
CLAIM_CN = "claim"
# IOT_CORE.md §1: keep-alive above 1200 s (or 0) means 1200 on AWS. Mosquitto tells an
# MQTT 5 client so in CONNACK, but refuses an MQTT 3.1.1 client asking more, and cannot
# raise a keep-alive under 30 s (see docs/sim.md).
MAX_KEEPALIVE = 1200
# Announced to MQTT 5 clients in CONNACK. A PUBLISH larger than this disconnects the
# client, so it leaves room for a full 128 KiB payload (message_size_limit) plus topic
# and properties: 146 KiB.
MAX_PACKET_SIZE = 149504


class ShadowRejected(Exception):
    """A shadow request the simulator rejected: CODE and MESSAGE as AWS sends them."""

    def __init__(self, doc: dict):
        super().__init__(f"{doc.get('code')} {doc.get('message')}")
        self.code = doc.get("code")
        self.message = doc.get("message")


class CommandRejected(Exception):
    """A cloud-side command (job create, cancel, ...) the simulator refused: CODE, MESSAGE."""

    def __init__(self, doc: dict):
        super().__init__(f"{doc.get('code')}: {doc.get('message')}")
        self.code = doc.get("code")
        self.message = doc.get("message")


class Paths:
    """Where things live in DIR."""

    def __init__(self, directory):
        self.root = Path(directory).resolve()
        self.cafile = self.root / "ca.crt"
        self.server_cert = self.root / "server.crt"
        self.service_cert = self.root / f"{SERVICE_USER}.crt"
        self.service_key = self.root / f"{SERVICE_USER}.key"
        self.claimstore = self.root / "claimstore"
        self.devices = self.root / "devices"
        self.broker = self.root / "broker"

    def device(self, thing: str) -> Path:
        return self.devices / thing


def recorded_port(directory) -> int:
    """The port `up` recorded in DIR, else the default 8883."""
    return int(Store(directory).settings().get("port", DEFAULT_PORT))


def endpoint_for(port: int) -> str:
    return f"{HOST}:{port}"


def _point_at(certstore: Path, endpoint: str) -> None:
    """Rewrite CERTSTORE/endpoint.txt when it names another endpoint."""
    endpoint_file = certstore / "endpoint.txt"
    if endpoint_file.exists() and endpoint_file.read_text().strip() != endpoint:
        write_file_atomic(endpoint_file, endpoint.encode() + b"\n")


def prepare(directory, port: int) -> pki.CA:
    """Create (or reuse) the CA, server, service and claim certificates in DIR; record PORT.

    Certstores already in DIR get their endpoint.txt pointed at PORT.
    """
    paths = Paths(directory)
    paths.root.mkdir(parents=True, exist_ok=True)
    ca = pki.CA.load_or_create(paths.root)
    ca.issue_server(paths.root)
    if not (paths.service_cert.exists() and paths.service_key.exists()):
        cert, key = ca.issue_client(SERVICE_USER)
        write_file_atomic(paths.service_key, key, mode=0o600)
        write_file_atomic(paths.service_cert, cert)
    endpoint = endpoint_for(port)
    if not any(paths.claimstore.glob("*/*-certificate.pem.crt")):
        cert, key = ca.issue_client(CLAIM_CN)
        pki.write_certstore(paths.claimstore, endpoint, cert, key)
    for certstore in [paths.claimstore, *sorted(paths.devices.glob("*"))]:
        _point_at(certstore, endpoint)
    write_default(paths.root)
    store = Store(paths.root)
    store.save_settings(dict(store.settings(), port=port))
    return ca


def make_device(directory, thing: str, port: Optional[int] = None) -> Path:
    """A certstore for THING (certificate CN = THING) in DIR/devices/THING; reused if present."""
    if not THING_NAME.match(thing):
        raise ValueError(f"not a valid thing name: {thing!r}")
    paths = Paths(directory)
    ca = pki.CA.load_or_create(paths.root)
    target = paths.device(thing)
    endpoint = endpoint_for(port if port is not None else recorded_port(directory))
    if any(target.glob("*/*-certificate.pem.crt")):
        _point_at(target, endpoint)
        return target
    cert, key = ca.issue_client(thing)
    pki.write_certstore(target, endpoint, cert, key)
    return target


class Simulator:
    """Mosquitto + the shadow and provisioning service, for `up` and for test suites.

    PORT None uses the port recorded in DIR (else 8883); 0 picks a free port.
    OPEN_TOPICS lets devices use ordinary topics too (not only their $aws ones).
    """

    def __init__(self, directory, port: Optional[int] = 0,
                 options: ShadowOptions = ShadowOptions(), open_topics: bool = True,
                 clock: Callable[[], float] = time.time, token_lifetime: int = 3600,
                 jobs_options: JobsOptions = JobsOptions(),
                 defender_options: DefenderOptions = DefenderOptions()):
        self.paths = Paths(directory)
        self.jobs_options = jobs_options
        self.defender_options = defender_options
        self.port = port
        self.options = options
        self.base_acl = OPEN_ACL if open_topics else DEFAULT_ACL
        self.clock = clock
        self.token_lifetime = token_lifetime
        self.store = Store(self.paths.root)
        self.broker: Optional[Mosquitto] = None
        self.service: Optional[SimService] = None

    # -- life cycle

    def start(self) -> "Simulator":
        if self.port is None:
            self.port = recorded_port(self.paths.root)
        elif self.port == 0:
            self.port = free_port()
        ca = prepare(self.paths.root, self.port)
        self.broker = Mosquitto(self.paths.broker, self.paths.cafile, self.paths.server_cert,
                                self.paths.root / "server.key", port=self.port,
                                acl=self._acl(), max_keepalive=MAX_KEEPALIVE,
                                max_packet_size=MAX_PACKET_SIZE)
        try:
            self.broker.start()
            provisioning = Provisioning(ca, self.store, lambda: load_templates(self.paths.root),
                                        self._registered, self.token_lifetime)
            self.service = SimService(HOST, self.port, self.paths.cafile,
                                      self.paths.service_cert, self.paths.service_key,
                                      self.store, provisioning, self.options, self.clock,
                                      jobs_options=self.jobs_options,
                                      defender_options=self.defender_options)
            self.service.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _acl(self) -> str:
        return self.base_acl + "\n# things registered by fleet provisioning\n" + \
            acl_entries(self.store)

    def _registered(self, certificate: dict) -> None:
        """A certificate was attached to a thing: reload the broker's ACL before answering."""
        if self.broker is None or not self.broker.running():
            return
        reloads = self.broker.log().count("Reloading config.")
        write_file_atomic(self.broker.acl_path, self._acl().encode())
        self.broker.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while self.broker.log().count("Reloading config.") <= reloads:
            if time.monotonic() > deadline:
                log("broker did not confirm the ACL reload within 5 s")
                return
            time.sleep(0.01)

    # -- what tests and the CLI use

    @property
    def cafile(self) -> Path:
        return self.paths.cafile

    @property
    def claimstore(self) -> Path:
        return self.paths.claimstore

    @property
    def endpoint(self) -> str:
        return endpoint_for(self.port)

    def device(self, thing: str) -> Path:
        """A certstore for THING, ready for chariotd's --certstore."""
        return make_device(self.paths.root, thing, self.port)

    def shadow_request(self, thing: str, shadow: Optional[str], op: str,
                       doc: Optional[dict] = None) -> List[tuple]:
        """Send a get/update/delete as the cloud; the responses are published as usual."""
        payload = encode(doc) if doc is not None else b""
        return self.service.request(f"{shadow_prefix(thing, shadow)}/{op}", payload)

    def _accepted(self, responses) -> dict:
        topic, doc = responses[0]
        if topic.endswith("/rejected"):
            raise ShadowRejected(doc)
        return doc

    def update_shadow(self, thing: str, shadow: Optional[str], state: Optional[dict],
                      **fields) -> dict:
        """Update with STATE ({"desired": ..., "reported": ...}); the update/accepted document."""
        return self._accepted(self.shadow_request(thing, shadow, "update",
                                                  dict(fields, state=state)))

    def set_desired(self, thing: str, shadow: Optional[str], desired: Optional[dict]) -> dict:
        return self.update_shadow(thing, shadow, {"desired": desired})

    def set_reported(self, thing: str, shadow: Optional[str], reported: Optional[dict]) -> dict:
        return self.update_shadow(thing, shadow, {"reported": reported})

    def get_shadow(self, thing: str, shadow: Optional[str] = None) -> Optional[dict]:
        """The shadow as get/accepted shows it, or None when there is none. Publishes nothing."""
        record = self.service.shadow(thing, shadow) if self.service else \
            self.store.load_shadow(thing, shadow)
        if record is None or not record.exists:
            return None
        state = dict(record.state)
        pending = record.delta()
        if pending:
            state["delta"] = pending
        return {"state": state, "metadata": record.metadata, "version": record.version}

    def delete_shadow(self, thing: str, shadow: Optional[str] = None) -> dict:
        return self._accepted(self.shadow_request(thing, shadow, "delete"))

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False) -> None:
        if isinstance(payload, (dict, list)):
            payload = encode(payload)
        elif isinstance(payload, str):
            payload = payload.encode()
        self.service.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def notify_tunnel(self, thing: str, services=("SSH",), token: str = "sim-destination-token",
                      region: str = "us-east-1") -> dict:
        doc = tunnel_notification(token, region, services)
        self.publish(tunnel_notify_topic(thing), doc)
        return doc

    # -- Jobs, as the cloud's control plane (IOT_CORE.md §7; docs/sim.md)

    def command(self, service: str, op: str, doc: dict) -> dict:
        """Run a cloud-side command as `chariotd-sim SERVICE OP` does; its answer, or
        CommandRejected."""
        accepted, answer = self.service.command(service, op, doc)
        if not accepted:
            raise CommandRejected(answer)
        return answer

    def create_job(self, thing: str, document: dict, job_id: Optional[str] = None,
                   in_progress_timeout: Optional[int] = None) -> dict:
        """CreateJob for THING (IN_PROGRESS_TIMEOUT in minutes): the QUEUED execution.
        notify and notify-next go out as §7.5 says."""
        doc = {"thingName": thing, "document": document}
        if job_id is not None:
            doc["jobId"] = job_id
        if in_progress_timeout is not None:
            doc["inProgressTimeoutInMinutes"] = in_progress_timeout
        return self.command("jobs", "create", doc)

    def list_jobs(self, thing: str) -> List[dict]:
        """THING's executions, every status, in creation order, without documents."""
        return self.command("jobs", "list", {"thingName": thing})["executions"]

    def describe_job(self, thing: str, job_id: str) -> dict:
        return self.command("jobs", "describe", {"thingName": thing, "jobId": job_id})

    def cancel_job(self, job_id: str, force: bool = False) -> dict:
        return self.command("jobs", "cancel", {"jobId": job_id, "force": force})

    def inject_jobs_error(self, thing: str, code: str = "RequestThrottled",
                          count: int = 1) -> None:
        """Answer THING's next COUNT Jobs requests with CODE (RequestThrottled or
        InternalError), as a throttled or failing service would."""
        with self.service.lock:
            self.service.jobs.inject(thing, code, count)

    def run_timers(self) -> List[tuple]:
        """Fire the Jobs timers due now (by the clock); the ticker does so every 0.5 s."""
        return self.service.run_timers()

    def defender_reports(self, thing: str) -> dict:
        """{"thingName", "reports": [{"reportId", "receivedAt", "format", "report"}...],
        "rejected": [{"receivedAt", "format", "code", "message"[, "reportId"]}...]}: the
        last Defender reports of THING (oldest first), as `chariotd-sim defender` prints."""
        return self.command("defender", "reports", {"thingName": thing})

    def things(self) -> List[dict]:
        """Things registered by fleet provisioning."""
        return list(self.store.things())


def tunnel_notification(token: str, region: str, services) -> dict:
    """§4: what AWS publishes on $aws/things/THING/tunnels/notify when a tunnel opens."""
    return {"clientAccessToken": token, "clientMode": "destination", "region": region,
            "services": list(services)}


__all__ = ["Simulator", "ShadowRejected", "CommandRejected", "make_device", "prepare", "recorded_port",
           "tunnel_notification"]
