"""driver.coalesce: runs of queued QoS 1 publishes become one write; everything else
keeps its place and its own write (pure: a queue shaped like paho's `_out_packet`)."""

from collections import deque
from types import SimpleNamespace

import paho.mqtt.client as mqtt

from chariotd.kernel.mqtt.driver import COALESCE_LIMIT, coalesce


def packet(command, qos=1, data=b"x" * 10, pos=0):
    return {"command": command, "mid": 0, "qos": qos, "pos": pos,
            "to_process": len(data) - pos, "packet": data, "info": None}


def test_a_run_of_qos1_publishes_becomes_one_packet_in_order():
    client = SimpleNamespace(_out_packet=deque(
        [packet(mqtt.PUBLISH, data=b"a" * 5), packet(mqtt.PUBLISH, data=b"b" * 6),
         packet(mqtt.PUBLISH, data=b"c" * 7)]))
    coalesce(client)
    (merged,) = client._out_packet
    assert bytes(merged["packet"]) == b"a" * 5 + b"b" * 6 + b"c" * 7
    assert merged["to_process"] == 18 and merged["pos"] == 0


def test_other_packets_qos0_and_a_started_write_break_the_runs():
    started = packet(mqtt.PUBLISH, data=b"s" * 10, pos=4)
    qos0 = packet(mqtt.PUBLISH, qos=0)          # its write is its outcome: kept alone
    ping = packet(mqtt.PINGREQ, qos=0, data=b"\xc0\x00")
    queue = [started, packet(mqtt.PUBLISH, data=b"1"), packet(mqtt.PUBLISH, data=b"2"),
             qos0, ping, packet(mqtt.PUBLISH, data=b"3"), packet(mqtt.PUBLISH, data=b"4")]
    client = SimpleNamespace(_out_packet=deque(queue))
    coalesce(client)
    out = list(client._out_packet)
    assert out[0] is started and out[2] is qos0 and out[3] is ping
    assert [bytes(p["packet"]) for p in (out[1], out[4])] == [b"12", b"34"]
    assert len(out) == 5


def test_merged_writes_stay_under_the_limit_and_big_publishes_stay_alone():
    half = b"h" * (COALESCE_LIMIT // 2)
    big = b"B" * COALESCE_LIMIT
    client = SimpleNamespace(_out_packet=deque(
        [packet(mqtt.PUBLISH, data=half), packet(mqtt.PUBLISH, data=half),
         packet(mqtt.PUBLISH, data=half), packet(mqtt.PUBLISH, data=big)]))
    coalesce(client)
    sizes = [p["to_process"] for p in client._out_packet]
    assert sizes == [2 * len(half), len(half), len(big)]
    assert all(size <= COALESCE_LIMIT for size in sizes)


def test_an_unexpected_queue_is_left_alone():
    odd = deque([{"command": mqtt.PUBLISH}, {"command": mqtt.PUBLISH}])  # no qos, pos
    client = SimpleNamespace(_out_packet=odd)
    coalesce(client)
    assert list(client._out_packet) == [{"command": mqtt.PUBLISH}, {"command": mqtt.PUBLISH}]
    coalesce(SimpleNamespace())  # no queue at all
