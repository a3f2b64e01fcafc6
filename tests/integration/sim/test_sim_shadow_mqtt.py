"""The shadow service over a real Mosquitto (IOT_CORE.md §2, §5)."""

from __future__ import annotations

import json

import pytest

from chariotd.sim.simulator import ShadowRejected, Simulator
from sim_clients import devices, sim  # noqa: F401 (fixtures)
from support import alive, wait_until

P = "$aws/things/dev1/shadow"


def test_update_get_delta_documents(sim, devices):
    """§2.3/§2.4: a device's update is answered; a cloud desired change reaches it as a delta."""
    dev = devices("dev1")
    dev.subscribe(f"{P}/update/accepted", f"{P}/update/rejected", f"{P}/update/delta",
                  f"{P}/update/documents", f"{P}/get/+")
    dev.publish(f"{P}/update", {"state": {"reported": {"led": "off"}}, "clientToken": "c1"})
    accepted = dev.wait_json(f"{P}/update/accepted")
    assert accepted["version"] == 1 and accepted["clientToken"] == "c1"
    assert dev.wait_json(f"{P}/update/documents")["current"]["state"] == {
        "reported": {"led": "off"}}

    sim.set_desired("dev1", None, {"led": "on"})
    delta = dev.wait_json(f"{P}/update/delta")
    assert delta["state"] == {"led": "on"} and delta["version"] == 2

    dev.publish(f"{P}/get", {"clientToken": "g"})
    got = dev.wait_json(f"{P}/get/accepted")
    assert got["state"] == {"desired": {"led": "on"}, "reported": {"led": "off"},
                            "delta": {"led": "on"}}
    assert got["clientToken"] == "g"
    assert sim.get_shadow("dev1")["version"] == 2


def test_named_shadow_and_empty_payload_get(sim, devices):
    """§2.1/§2.2: named shadows; get with an empty payload is accepted."""
    dev = devices("dev1")
    named = f"{P}/name/cfg"
    dev.subscribe(f"{named}/get/+", f"{named}/update/accepted")
    dev.publish(f"{named}/get", b"")
    assert dev.wait_json(f"{named}/get/rejected")["message"] == \
        "No shadow exists with name: 'cfg'"
    sim.update_shadow("dev1", "cfg", {"reported": {"x": 1}})
    dev.publish(f"{named}/get", b"")
    assert dev.wait_json(f"{named}/get/accepted")["state"] == {"reported": {"x": 1}}
    assert sim.get_shadow("dev1") is None, "the classic shadow is separate"


def test_bad_requests_get_errors_and_service_survives(sim, devices):
    """§2.6: malformed updates are rejected with AWS's texts; the service keeps answering."""
    dev = devices("dev1")
    dev.subscribe(f"{P}/update/rejected", f"{P}/update/accepted")
    bad = [
        (b"{nope", 400, "Invalid JSON"),
        (b'{"state": {"desired": 5}, "clientToken": "t"}', 400,
         "Desired node must be an object"),
        (json.dumps({"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}}), 400,
         "JSON contains too many levels of nesting; maximum is 6"),
        (json.dumps({"state": {"reported": {"big": "x" * 9000}}}), 413,
         "The payload exceeds the maximum size allowed"),
        (json.dumps({"state": {}, "clientToken": "z" * 65}), 400, "Invalid clientToken"),
        (json.dumps({"state": {"reported": {"a": 1}}, "version": 7}), 409, "Version conflict"),
        (b"\xff\xfe", 415, "Unsupported documented encoding; supported encoding is UTF-8"),
    ]
    for n, (payload, code, message) in enumerate(bad, start=1):
        dev.publish(f"{P}/update", payload)
        rejected = dev.wait_json(f"{P}/update/rejected", count=n)
        assert (rejected["code"], rejected["message"]) == (code, message)
    dev.publish(f"{P}/update", {"state": {"reported": {"ok": True}}})
    assert dev.wait_json(f"{P}/update/accepted")["version"] == 1


def test_device_reaches_only_its_own_thing(sim, devices):
    """§5.2: the ACL drops a device's requests for another thing's shadow."""
    intruder = devices("dev1")
    victim = devices("dev2")
    victim.subscribe("$aws/things/dev2/shadow/update/accepted")
    intruder.subscribe("$aws/things/dev2/shadow/#")
    intruder.publish("$aws/things/dev2/shadow/update", {"state": {"desired": {"evil": 1}}})
    # the intruder's own request still works afterwards, and is answered in order
    intruder.subscribe(f"{P}/update/accepted")
    intruder.publish(f"{P}/update", {"state": {"reported": {"fine": 1}}})
    intruder.wait_json(f"{P}/update/accepted")
    assert sim.get_shadow("dev2") is None
    sim.set_reported("dev2", None, {"x": 1})
    victim.wait_json("$aws/things/dev2/shadow/update/accepted")
    assert not [m for m in intruder.received() if m.topic.startswith("$aws/things/dev2/")]


def test_responses_do_not_loop(sim, devices):
    """§5.3: the service answers only request topics, never its own responses (a reply
    topic is the service's own: devices may not publish there, so the cloud side does)."""
    dev = devices("dev1")
    dev.subscribe(f"{P}/#")
    sim.publish(f"{P}/update/accepted", {"state": {"reported": {"a": 1}}})
    dev.publish(f"{P}/update", {"state": {"reported": {"a": 2}}})
    dev.wait_json(f"{P}/update/documents")
    assert [m.topic for m in dev.received()].count(f"{P}/update/accepted") == 2  # own + answer
    assert sim.get_shadow("dev1")["version"] == 1


def test_state_persists_across_restart(tmp_path):
    """Shadows are kept in DIR: a restart keeps them, with their versions (§2.5)."""
    directory = tmp_path / "sim"
    with Simulator(directory, port=0) as first:
        first.set_reported("dev1", None, {"a": 1})
        first.set_reported("dev1", "cfg", {"b": 2})
        first.delete_shadow("dev1", "cfg")
    with Simulator(directory, port=None) as second:
        assert second.port == first.port, "the recorded port is reused"
        assert second.get_shadow("dev1")["state"] == {"reported": {"a": 1}}
        assert second.get_shadow("dev1", "cfg") is None
        assert second.set_reported("dev1", "cfg", {"b": 3})["version"] == 2
        with pytest.raises(ShadowRejected) as caught:
            second.update_shadow("dev1", None, {"reported": {"a": 2}}, version=5)
        assert caught.value.code == 409


def test_stop_leaves_nothing_running(tmp_path):
    sim = Simulator(tmp_path / "sim", port=0).start()
    pid = sim.broker.process.pid
    service_thread = sim.service.client._thread
    sim.stop()
    assert not alive(pid)
    wait_until(lambda: service_thread is None or not service_thread.is_alive(), 5)
