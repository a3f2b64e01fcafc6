"""Acting as the cloud from the command line: a paho client with the iotsim identity
(DIR/iotsim.crt) talking to a running simulator, like an application using IoT Core.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import uuid
from typing import Callable, Iterable, Optional, Tuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from chariotd.sim.service import encode
from chariotd.sim.simulator import HOST, Paths, recorded_port
from chariotd.sim.topics import control_topic, shadow_prefix


class CloudError(Exception):
    pass


class CloudClient:
    """One connection to the simulator's broker as the cloud (may use every topic)."""

    def __init__(self, directory, port: Optional[int] = None, timeout: float = 10.0):
        paths = Paths(directory)
        if not paths.service_cert.exists():
            raise CloudError(f"{paths.root} holds no simulator (run `chariotd-sim up` first)")
        self.timeout = timeout
        self.messages: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=f"iotsim-cli-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.client.tls_set(ca_certs=str(paths.cafile), certfile=str(paths.service_cert),
                            keyfile=str(paths.service_key))
        self.client.on_connect = lambda *args: self.connected.set()
        self.client.on_message = lambda client, userdata, message: self.messages.put(message)
        port = port if port is not None else recorded_port(paths.root)
        try:
            self.client.connect(HOST, port, keepalive=30)
        except OSError as error:
            raise CloudError(f"cannot reach the simulator at {HOST}:{port} ({error}); "
                             f"is `chariotd-sim up` running?") from None
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.close()
            raise CloudError(f"no connection to {HOST}:{port} within {timeout}s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "CloudClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def subscribe(self, filters: Iterable[str]) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *args: done.set()
        self.client.subscribe([(f, 1) for f in filters])
        if not done.wait(self.timeout):
            raise CloudError("no SUBACK from the broker")

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            raise CloudError(f"publish to {topic} was not acknowledged")

    def shadow(self, thing: str, shadow: Optional[str], op: str,
               doc: Optional[dict] = None) -> Tuple[bool, dict]:
        """Send a shadow request and wait for its answer: (accepted?, response document)."""
        return self.request(f"{shadow_prefix(thing, shadow)}/{op}", doc)

    def command(self, service: str, op: str, doc: dict) -> Tuple[bool, dict]:
        """A cloud-side command to the simulator service ($iotsim/SERVICE/OP):
        (accepted?, answer)."""
        return self.request(control_topic(service, op), doc)

    def request(self, base: str, doc: Optional[dict] = None) -> Tuple[bool, dict]:
        """Publish DOC with a fresh clientToken on BASE and wait for BASE/accepted or
        BASE/rejected carrying that token: (accepted?, response document)."""
        token = f"iotsim-{uuid.uuid4()}"
        self.subscribe([f"{base}/accepted", f"{base}/rejected"])
        self.publish(base, encode(dict(doc or {}, clientToken=token)))
        while True:
            try:
                message = self.messages.get(timeout=self.timeout)
            except queue.Empty:
                raise CloudError(f"no answer to {base} within {self.timeout}s "
                                 f"(is the simulator service running?)") from None
            try:
                answer = json.loads(message.payload)
            except ValueError:
                continue
            if isinstance(answer, dict) and answer.get("clientToken") == token:
                return message.topic.endswith("/accepted"), answer

    def watch(self, on_message: Callable[[mqtt.MQTTMessage], bool],
              timeout: Optional[float] = None) -> None:
        """Call ON_MESSAGE for each message on the subscriptions until it returns False
        (or TIMEOUT seconds pass without a message)."""
        while True:
            try:
                message = self.messages.get(timeout=timeout)
            except queue.Empty:
                return
            if on_message(message) is False:
                return
