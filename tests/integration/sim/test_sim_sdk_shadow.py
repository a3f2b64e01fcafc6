"""The simulator's shadow service held against the official AWS IoT Device SDK v2 for
Python: the v2 client (MQTT 5, request-response) and the v1 client (MQTT 3.1.1) get,
update and delete classic and named shadows and see deltas as on AWS (IOT_CORE.md §2)."""

from __future__ import annotations

import queue

import pytest
from awscrt import mqtt
from awsiot import ServiceStreamOptions, V2ServiceException, iotshadow

from sdk_clients import TIMEOUT, mqtt3_connection, mqtt5_client, rr_options
from sim_clients import sim  # noqa: F401 (fixture)


def test_v2_client_classic_and_named_shadows(sim):
    with mqtt5_client(sim, sim.device("dev1")) as device:
        shadow = iotshadow.IotShadowClientV2(device.client, rr_options())
        deltas: "queue.Queue[iotshadow.ShadowDeltaUpdatedEvent]" = queue.Queue()
        stream = shadow.create_shadow_delta_updated_stream(
            iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name="dev1"),
            ServiceStreamOptions(incoming_event_listener=deltas.put))
        stream.open()

        with pytest.raises(V2ServiceException) as caught:
            shadow.get_shadow(iotshadow.GetShadowRequest(thing_name="dev1")).result(TIMEOUT)
        error = caught.value.modeled_error
        assert (error.code, error.message, error.timestamp) == (
            404, "No shadow exists with name: 'dev1'", None)
        assert error.client_token, "the SDK's correlation token is echoed"

        accepted = shadow.update_shadow(iotshadow.UpdateShadowRequest(
            thing_name="dev1", state=iotshadow.ShadowState(reported={"led": "off"}))
        ).result(TIMEOUT)
        assert accepted.version == 1 and accepted.state.reported == {"led": "off"}
        assert accepted.metadata.reported["led"]["timestamp"] > 0

        sim.set_desired("dev1", None, {"led": "on"})
        delta = deltas.get(timeout=TIMEOUT)
        assert (delta.state, delta.version) == ({"led": "on"}, 2)

        got = shadow.get_shadow(iotshadow.GetShadowRequest(thing_name="dev1")).result(TIMEOUT)
        assert (got.state.desired, got.state.reported, got.state.delta, got.version) == (
            {"led": "on"}, {"led": "off"}, {"led": "on"}, 2)

        with pytest.raises(V2ServiceException) as caught:
            shadow.update_shadow(iotshadow.UpdateShadowRequest(
                thing_name="dev1", state=iotshadow.ShadowState(reported={"led": "on"}),
                version=7)).result(TIMEOUT)
        assert caught.value.modeled_error.code == 409

        named = shadow.update_named_shadow(iotshadow.UpdateNamedShadowRequest(
            thing_name="dev1", shadow_name="cfg",
            state=iotshadow.ShadowState(desired={"x": 1}))).result(TIMEOUT)
        assert named.version == 1
        deleted = shadow.delete_named_shadow(iotshadow.DeleteNamedShadowRequest(
            thing_name="dev1", shadow_name="cfg")).result(TIMEOUT)
        assert deleted.version == 1
        with pytest.raises(V2ServiceException) as caught:
            shadow.get_named_shadow(iotshadow.GetNamedShadowRequest(
                thing_name="dev1", shadow_name="cfg")).result(TIMEOUT)
        assert (caught.value.modeled_error.code, caught.value.modeled_error.message) == (
            404, "No shadow exists with name: 'cfg'")
    assert sim.get_shadow("dev1")["version"] == 2


def test_v1_client_update_get_and_delta_events(sim):
    with mqtt3_connection(sim, sim.device("dev1")) as connection:
        shadow = iotshadow.IotShadowClient(connection)
        events: "queue.Queue[tuple]" = queue.Queue()
        subscriptions = [
            shadow.subscribe_to_update_shadow_accepted(
                iotshadow.UpdateShadowSubscriptionRequest(thing_name="dev1"),
                mqtt.QoS.AT_LEAST_ONCE, lambda r: events.put(("update", r))),
            shadow.subscribe_to_get_shadow_accepted(
                iotshadow.GetShadowSubscriptionRequest(thing_name="dev1"),
                mqtt.QoS.AT_LEAST_ONCE, lambda r: events.put(("get", r))),
            shadow.subscribe_to_get_shadow_rejected(
                iotshadow.GetShadowSubscriptionRequest(thing_name="dev1"),
                mqtt.QoS.AT_LEAST_ONCE, lambda r: events.put(("get-rejected", r))),
            shadow.subscribe_to_shadow_delta_updated_events(
                iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name="dev1"),
                mqtt.QoS.AT_LEAST_ONCE, lambda r: events.put(("delta", r))),
        ]
        for future, _topic in subscriptions:
            future.result(TIMEOUT)

        shadow.publish_get_shadow(iotshadow.GetShadowRequest(
            thing_name="dev1", client_token="g0"), mqtt.QoS.AT_LEAST_ONCE).result(TIMEOUT)
        kind, rejected = events.get(timeout=TIMEOUT)
        assert (kind, rejected.code, rejected.client_token, rejected.timestamp) == (
            "get-rejected", 404, "g0", None)

        shadow.publish_update_shadow(iotshadow.UpdateShadowRequest(
            thing_name="dev1", client_token="u1",
            state=iotshadow.ShadowState(reported={"mode": "eco"}, desired={"mode": "max"})),
            mqtt.QoS.AT_LEAST_ONCE).result(TIMEOUT)
        seen = dict(events.get(timeout=TIMEOUT) for _ in range(2))
        assert seen["update"].client_token == "u1" and seen["update"].version == 1
        assert seen["delta"].state == {"mode": "max"} and seen["delta"].version == 1

        shadow.publish_get_shadow(iotshadow.GetShadowRequest(
            thing_name="dev1", client_token="g1"), mqtt.QoS.AT_LEAST_ONCE).result(TIMEOUT)
        kind, got = events.get(timeout=TIMEOUT)
        assert (kind, got.client_token, got.state.delta) == ("get", "g1", {"mode": "max"})
        assert events.empty()
