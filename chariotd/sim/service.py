"""The simulator's cloud side on the broker: a paho client (identity ``iotsim``) that
answers shadow, provisioning and Jobs requests and Defender reports, and the cloud-side commands on
``$iotsim/SERVICE/OP``. Only request topics are subscribed, with MQTT v5 noLocal, so
the service never sees its own responses. A ticker thread runs the Jobs timers.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Callable, List, Optional, Tuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from chariotd.sim.defender import DefenderOptions
from chariotd.sim.defender_service import DefenderService
from chariotd.sim.jobs import JobsError, JobsOptions
from chariotd.sim.jobs_service import JobsService
from chariotd.sim.log import log
from chariotd.sim.provisioning import Provisioning
from chariotd.sim.shadow_service import ShadowOptions, ShadowRecord, handle
from chariotd.sim.store import Store
from chariotd.sim.topics import (CONTROL_FILTER, CONTROL_PREFIX, DEFENDER_REQUEST_FILTERS,
                                 JOBS_REQUEST_FILTERS, PROVISIONING_REQUEST_FILTERS,
                                 SHADOW_REQUEST_FILTERS, parse_defender_topic,
                                 parse_jobs_request, parse_shadow_request)

Response = Tuple[str, dict]


def encode(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class SimService:
    """Connects to HOST:PORT with the iotsim certificate and serves requests until stop()."""

    def __init__(self, host: str, port: int, cafile, certfile, keyfile, store: Store,
                 provisioning: Optional[Provisioning] = None,
                 options: ShadowOptions = ShadowOptions(),
                 clock: Callable[[], float] = time.time, client_id: str = "iotsim-service",
                 jobs_options: JobsOptions = JobsOptions(), tick: float = 0.5,
                 defender_options: DefenderOptions = DefenderOptions()):
        self.host, self.port = host, port
        self.store = store
        self.provisioning = provisioning
        self.options = options
        self.clock = clock
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.jobs = JobsService(store, jobs_options)
        self.defender = DefenderService(store, defender_options)
        self.controls = {"jobs": self.jobs.control, "defender": self.defender.control}
        self.tick = tick
        self.stopping = threading.Event()
        self.ticker = threading.Thread(target=self._run_timers, name="iotsim-timers",
                                       daemon=True)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(cafile), certfile=str(certfile), keyfile=str(keyfile))
        self.client.reconnect_delay_set(0.1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    def start(self, timeout: float = 10.0) -> "SimService":
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(timeout):
            self.stop()
            raise RuntimeError(f"simulator service could not subscribe at {self.host}:"
                               f"{self.port} within {timeout}s")
        self.ticker.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.ticker.is_alive():
            self.ticker.join()
        self.client.disconnect()
        self.client.loop_stop()

    def _run_timers(self) -> None:
        while not self.stopping.wait(self.tick):
            try:
                self.run_timers()
            except Exception as error:  # a broken store file must not stop the timers
                log(f"internal error in the timers: {type(error).__name__}: {error}")

    def run_timers(self) -> List[Response]:
        """Fire the Jobs timers due by now; publish and return the events."""
        with self.lock:
            responses = self.jobs.expire(self.now())
            self._publish(responses)
        return responses

    def _publish(self, responses: List[Response]) -> None:
        for response_topic, doc in responses:
            payload = doc if isinstance(doc, bytes) else encode(doc)
            self.client.publish(response_topic, payload, qos=1)

    # -- paho callbacks (paho's thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log(f"service connection refused: {reason_code}")
            return
        options = SubscribeOptions(qos=1, noLocal=True)
        filters = SHADOW_REQUEST_FILTERS + JOBS_REQUEST_FILTERS + DEFENDER_REQUEST_FILTERS + (
            CONTROL_FILTER,) + (
            PROVISIONING_REQUEST_FILTERS if self.provisioning else ())
        client.subscribe([(topic, options) for topic in filters])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if any(code.is_failure for code in reason_codes):
            log(f"service subscription refused: {[str(c) for c in reason_codes]}")
            return
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.subscribed.clear()

    def _on_message(self, client, userdata, message):
        try:
            self.request(message.topic, message.payload)
        except Exception as error:  # bad input must never stop the service
            log(f"internal error on {message.topic}: {type(error).__name__}: {error}")

    # -- requests

    def now(self) -> int:
        return int(self.clock())

    def request(self, topic: str, payload: bytes) -> List[Response]:
        """Answer a request as if it came from the broker; publish and return the responses."""
        shadow_request = parse_shadow_request(topic)
        jobs_request = parse_jobs_request(topic) if shadow_request is None else None
        report = parse_defender_topic(topic)
        with self.lock:
            if shadow_request is not None:
                responses = self._shadow(shadow_request, payload)
            elif jobs_request is not None:
                responses = self.jobs.request(jobs_request, payload, self.now())
            elif report is not None:
                responses = self.defender.report(*report, payload, self.now())
            elif topic.startswith(CONTROL_PREFIX):
                responses = self._control(topic, payload)
            elif self.provisioning is not None:
                responses = self.provisioning.handle(topic, payload, self.now())
            else:
                responses = []
            # published under the lock, so responses keep the order of the requests
            self._publish(responses)
        if not responses:
            log(f"dropped message on {topic}: not a request the simulator answers")
        return responses

    def _shadow(self, request, payload: bytes) -> List[Response]:
        old = self.store.load_shadow(request.thing, request.shadow)
        new, responses = handle(old, request, payload, self.now(), self.options)
        if new is not old:
            self.store.save_shadow(request.thing, request.shadow, new)
        for topic, doc in responses:
            if topic.endswith("/rejected"):
                log(f"rejected {request.op} of {request.prefix}: {doc['code']} {doc['message']}")
        return responses

    def _control(self, topic: str, payload: bytes) -> List[Response]:
        """A cloud-side command on $iotsim/SERVICE/OP: {..., clientToken} -> TOPIC/accepted
        with the answer, or TOPIC/rejected with {code, message}; then its events."""
        _, service, op = topic.split("/")
        try:
            doc = json.loads(payload)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or service not in self.controls:
            log(f"dropped message on {topic}: not a command the simulator knows")
            return []
        accepted, answer, events = self._command(service, op, doc)
        answer = dict(answer, clientToken=doc.get("clientToken"))
        return [(f"{topic}/{'accepted' if accepted else 'rejected'}", answer)] + events

    def _command(self, service: str, op: str, doc: dict) -> Tuple[bool, dict, List[Response]]:
        try:
            answer, events = self.controls[service](op, doc, self.now())
        except JobsError as error:
            return False, {"code": error.code, "message": error.message}, []
        return True, answer, events

    def command(self, service: str, op: str, doc: dict) -> Tuple[bool, dict]:
        """Run a cloud-side command in-process, as the library does: (accepted?, answer).
        Its events (notify, notify-next) are published as for the CLI's."""
        with self.lock:
            accepted, answer, events = self._command(service, op, doc)
            self._publish(events)
        return accepted, answer

    def shadow(self, thing: str, shadow: Optional[str] = None) -> Optional[ShadowRecord]:
        with self.lock:
            return self.store.load_shadow(thing, shadow)
