"""Device Defender reports through the real broker (IOT_CORE.md §8): a paho device
publishes good and bad reports in JSON and CBOR and gets its replies on
.../accepted|rejected; the simulator keeps them for `chariotd-sim defender` and
Simulator.defender_reports; another thing's topics stay closed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chariotd.sim import cbor
from chariotd.sim.defender import DefenderOptions
from chariotd.sim.simulator import Simulator
from sim_clients import Device, devices, sim  # noqa: F401 (fixtures)
from support import wait_until

D = "$aws/things/dev1/defender/metrics"
SIM = str(Path(sys.executable).parent / "chariotd-sim")


def report(report_id: int, **metrics) -> dict:
    return {"header": {"report_id": report_id, "version": "1.0"},
            "metrics": metrics or {"listening_tcp_ports": {"ports": [{"port": 22}], "total": 1}}}


def test_good_and_bad_reports_in_json_and_cbor(tmp_path):
    options = DefenderOptions(min_interval=0)
    with Simulator(tmp_path / "sim", port=0, defender_options=options) as sim:
        device = Device.from_certstore(sim, sim.device("dev1"), "dev1-defender")
        try:
            device.subscribe(f"{D}/json/accepted", f"{D}/json/rejected",
                             f"{D}/cbor/accepted", f"{D}/cbor/rejected")
            device.publish(f"{D}/json", report(100))
            assert device.wait_json(f"{D}/json/accepted")["reportId"] == 100
            device.publish(f"{D}/json", report(100))
            refused = device.wait_json(f"{D}/json/rejected")
            assert refused["statusDetails"]["ErrorCode"] == "ReportIdNotIncreasing"
            device.publish(f"{D}/json", b"\x00 not json")
            assert device.wait_json(f"{D}/json/rejected", 2)["statusDetails"][
                "ErrorCode"] == "InvalidPayload"

            device.client.publish(f"{D}/cbor", cbor.dumps(
                {"hed": {"rid": 101, "v": "1.0"}, "cmet": {"temp": [{"number": 41.5}]}}),
                qos=1).wait_for_publish(10)
            reply = cbor.loads(_wait_raw(device, f"{D}/cbor/accepted"))
            assert (reply["status"], reply["reportId"]) == ("ACCEPTED", 101)
            device.client.publish(f"{D}/cbor", b"\xbf\x61", qos=1).wait_for_publish(10)
            reply = cbor.loads(_wait_raw(device, f"{D}/cbor/rejected"))
            assert reply["statusDetails"]["ErrorCode"] == "InvalidPayload"

            kept = sim.defender_reports("dev1")
            assert [(r["reportId"], r["format"]) for r in kept["reports"]] == [
                (100, "json"), (101, "cbor")]
            assert [r["code"] for r in kept["rejected"]] == [
                "ReportIdNotIncreasing", "InvalidPayload", "InvalidPayload"]
        finally:
            device.close()


def _wait_raw(device: Device, topic: str) -> bytes:
    return wait_until(lambda: device.received(topic), 10, message=topic)[0].payload


def test_rate_limit_and_another_things_topic(sim, devices):
    device = devices("dev1")
    device.subscribe(f"{D}/json/accepted", f"{D}/json/rejected")
    device.publish(f"{D}/json", report(1))
    device.wait_json(f"{D}/json/accepted")
    device.publish(f"{D}/json", report(2))
    assert device.wait_json(f"{D}/json/rejected")["statusDetails"]["ErrorCode"] == "Throttled"
    intruder = devices("dev2")
    info = intruder.publish(f"{D}/json", report(3))
    assert intruder.puback(info).value == 0x87
    forged = intruder.publish(f"{D}/json/accepted", {"reportId": 3})
    assert intruder.puback(forged).value == 0x87
    assert [r["reportId"] for r in sim.defender_reports("dev1")["reports"]] == [1]


def test_defender_command_prints_the_reports(sim, devices):
    device = devices("dev1")
    device.subscribe(f"{D}/json/accepted")
    device.publish(f"{D}/json", report(7))
    device.wait_json(f"{D}/json/accepted")
    result = subprocess.run([SIM, "defender", "dev1", "--dir", str(sim.paths.root)],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["thingName"] == "dev1"
    assert printed["reports"][0]["report"] == report(7)
