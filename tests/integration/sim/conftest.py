"""Fixtures for the simulator's integration tests: a running Simulator in tmp_path and
connected device clients."""

from __future__ import annotations

import os
from typing import Optional

import pytest

from chariotd.sim.simulator import Simulator
from sim_clients import Device
from support import alive


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
