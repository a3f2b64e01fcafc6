"""Helpers for the simulator's integration tests: a plain paho device client (MQTT v5)
and the fixtures `sim` (a running Simulator in tmp_path) and `devices`.

There is deliberately no conftest.py here: other suites import names from the top-level
conftest module, which a second conftest.py would shadow. Test modules import the
fixtures from this module instead."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import List, Optional

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chariotd.sim.simulator import Simulator
from support import alive, wait_until


class Device:
    """A plain paho client connected with a certstore's (or given) certificate."""

    def __init__(self, sim: Simulator, certfile, keyfile, client_id: str):
        self.messages: List[mqtt.MQTTMessage] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(sim.cafile), certfile=str(certfile),
                            keyfile=str(keyfile))
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.on_message = self._on_message
        self.acks = {}  # mid -> the PUBACK's reason code (MQTT 5)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", sim.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), "device did not connect"

    @classmethod
    def from_certstore(cls, sim: Simulator, certstore: Path, client_id: str) -> "Device":
        cert_dir = next(p for p in Path(certstore).iterdir() if p.is_dir())
        return cls(sim, cert_dir / f"{cert_dir.name}-certificate.pem.crt",
                   cert_dir / f"{cert_dir.name}-private.pem.key", client_id)

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self.lock:
            self.acks[mid] = reason_code

    def puback(self, info) -> "mqtt.ReasonCode":
        """The PUBACK reason code the broker gave the publish INFO."""
        got = wait_until(lambda: info.mid in self.acks and [self.acks[info.mid]], 10,
                         message=f"the PUBACK of message {info.mid}")
        return got[0]

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append(message)

    def subscribe(self, *filters: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe([(f, 1) for f in filters])
        assert done.wait(10), "no SUBACK"

    def publish(self, topic: str, payload, qos: int = 1):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(10)
        return info

    def received(self, topic: Optional[str] = None) -> List[mqtt.MQTTMessage]:
        with self.lock:
            return [m for m in self.messages if topic is None or m.topic == topic]

    def wait_json(self, topic: str, count: int = 1, timeout: float = 10.0) -> dict:
        """The COUNT-th message on TOPIC, decoded."""
        got = wait_until(lambda: len(self.received(topic)) >= count and self.received(topic),
                         timeout, message=f"{count} message(s) on {topic}; got "
                         + repr([m.topic for m in self.received()]))
        return json.loads(got[count - 1].payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

@pytest.fixture
def sim(tmp_path):
    simulator = Simulator(tmp_path / "sim", port=0).start()
    broker_pid = simulator.broker.process.pid
    yield simulator
    simulator.stop()
    assert not alive(broker_pid), "mosquitto outlived Simulator.stop()"


@pytest.fixture
def devices(sim):
    """devices(thing) -> a connected Device with a fresh certificate for THING."""
    made = []

    def connect(thing: str, client_id: Optional[str] = None) -> Device:
        device = Device.from_certstore(sim, sim.device(thing),
                                       client_id or f"{thing}-{os.getpid()}-{len(made)}")
        made.append(device)
        return device

    yield connect
    for device in made:
        device.close()
