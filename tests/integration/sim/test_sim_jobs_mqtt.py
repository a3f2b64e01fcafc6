"""The simulator's Jobs service through the real broker with a paho device: timers fired
by the service's own ticker, state kept across a restart, topics that map to no API,
and the ACL (a device reaches only its own thing's Jobs topics)."""

from __future__ import annotations

import time

from sim_clients import Device, devices, sim  # noqa: F401 (fixtures)
from chariotd.sim.simulator import Simulator

P = "$aws/things/dev1/jobs"


def test_the_in_progress_timer_fires_without_being_asked(tmp_path):
    offset = [0.0]
    with Simulator(tmp_path / "sim", port=0, clock=lambda: time.time() + offset[0]) as sim:
        device = Device.from_certstore(sim, sim.device("dev1"), "dev1-timer")
        try:
            device.subscribe(f"{P}/notify-next", f"{P}/start-next/accepted")
            sim.create_job("dev1", {"operation": "slow"}, job_id="slow",
                           in_progress_timeout=1)
            device.publish(f"{P}/start-next", {})
            execution = device.wait_json(f"{P}/start-next/accepted")["execution"]
            assert execution["approximateSecondsBeforeTimedOut"] == 60
            offset[0] = 61
            assert list(device.wait_json(f"{P}/notify-next", 2)) == ["timestamp"], \
                "the head timed out and nothing is pending"
            assert sim.describe_job("dev1", "slow")["status"] == "TIMED_OUT"
        finally:
            device.close()


def test_jobs_survive_a_restart_and_odd_topics_are_answered(tmp_path):
    with Simulator(tmp_path / "sim", port=0) as sim:
        sim.create_job("dev1", {"operation": "kept"}, job_id="kept")
    with Simulator(tmp_path / "sim", port=0) as sim:
        device = Device.from_certstore(sim, sim.device("dev1"), "dev1-restart")
        try:
            device.subscribe(f"{P}/+/get/+", f"{P}/+/update/+")
            device.publish(f"{P}/kept/get", {"clientToken": "d"})
            got = device.wait_json(f"{P}/kept/get/accepted")
            assert (got["clientToken"], got["execution"]["jobDocument"]) == (
                "d", {"operation": "kept"})
            device.publish(f"{P}/$next/update", {"status": "SUCCEEDED"})
            assert device.wait_json(f"{P}/$next/update/rejected")["code"] == "InvalidTopic"
            device.publish(f"{P}/kept/update", b"not json")
            assert device.wait_json(f"{P}/kept/update/rejected")["code"] == "InvalidJson"
        finally:
            device.close()


def test_a_device_cannot_touch_another_things_jobs(sim, devices):
    sim.create_job("dev1", {"operation": "mine"}, job_id="mine")
    intruder = devices("dev2")
    intruder.subscribe(f"{P}/#")
    info = intruder.publish(f"{P}/mine/update", {"status": "SUCCEEDED"})
    assert intruder.puback(info).value == 0x87
    forged = intruder.publish(f"{P}/notify-next", {"timestamp": 1})
    assert intruder.puback(forged).value == 0x87
    owner = devices("dev1")
    owner.subscribe(f"{P}/get/accepted")
    owner.publish(f"{P}/get", {})
    assert [s["jobId"] for s in owner.wait_json(f"{P}/get/accepted")["queuedJobs"]] == ["mine"]
    assert sim.describe_job("dev1", "mine")["status"] == "QUEUED"
    assert intruder.received() == []
