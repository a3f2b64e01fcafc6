"""What the simulator's broker announces in an MQTT 5 CONNACK, seen by the official SDK:
keep-alive clamped to 1200 s and the maximum packet size (IOT_CORE.md §1), and the
128 KiB payload that still fits in it."""

from __future__ import annotations

import pytest

from chariotd.sim.simulator import MAX_KEEPALIVE, MAX_PACKET_SIZE
from sdk_clients import mqtt5_client
from sim_clients import devices, sim  # noqa: F401 (fixtures)
from support import wait_until


@pytest.mark.parametrize("asked, told", [(0, 1200), (3000, 1200), (65535, 1200),
                                         (1200, None), (60, None)])
def test_keepalive_is_clamped_to_1200(sim, asked, told):
    """A keep-alive of 0 or above 1200 s is 1200 s, as on AWS; within range it stays
    (None: CONNACK carries no Server Keep Alive, so the client's own value holds)."""
    with mqtt5_client(sim, sim.device("dev1"), keep_alive_interval_sec=asked) as device:
        assert device.connack.server_keep_alive_sec == told
        assert device.connack.maximum_packet_size == MAX_PACKET_SIZE
    assert MAX_KEEPALIVE == 1200


def test_a_full_128_kib_payload_fits_the_announced_packet_size(sim, devices):
    """A 128 KiB payload, AWS's limit (and chariotd's), passes without a disconnection
    (with max_packet_size 131072 the client was disconnected)."""
    dev = devices("dev1")
    dev.subscribe("chariot/dev1/big")
    assert dev.publish("chariot/dev1/big", b"x" * (128 * 1024)).is_published()
    wait_until(lambda: dev.received("chariot/dev1/big"), 10, message="the 128 KiB message")
    assert [len(m.payload) for m in dev.received("chariot/dev1/big")] == [128 * 1024]
    assert dev.client.is_connected()
