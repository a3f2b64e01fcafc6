"""Message publishing end to end: the real chariotd tree against a real Mosquitto."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import start_broker
from support import Subscriber, Supervised, wait_until, write_message


def message(topic, payload, **extra):
    return json.dumps({"topic": topic, "payload": payload, **extra})


def files_in(path: Path):
    return sorted(os.listdir(path))


@pytest.fixture
def mqtt_dir(tmp_path):
    return tmp_path / "mqtt"


def test_object_and_string_payloads_at_qos_0_and_1(daemons, base_args, subscriber, mqtt_dir,
                                                    tmp_path):
    daemon = daemons([*base_args, f"--messages={mqtt_dir}"], tmp_path)
    daemon.wait_connected()
    write_message(mqtt_dir, "obj", message("t/obj", {"key": "value", "key2": 2}))
    write_message(mqtt_dir, "str", message("t/str", "plain text ✓", qos=0))
    write_message(mqtt_dir, "q1", message("t/q1", [1, 2], qos=1))
    subscriber.wait_for(3)
    got = {m.topic: m.payload for m in subscriber.received()}
    assert got == {"t/obj": b'{"key":"value","key2":2}',
                   "t/str": "plain text ✓".encode(), "t/q1": b"[1,2]"}
    wait_until(lambda: files_in(mqtt_dir / "new") == [], message="new/ empty")
    assert files_in(mqtt_dir / "failed") == []


def test_action_directories_are_created(daemons, base_args, mqtt_dir, tmp_path):
    daemons([*base_args, f"--messages={mqtt_dir}"], tmp_path).wait_connected()
    assert sorted(os.listdir(mqtt_dir)) == ["failed", "new", "tmp"]


def test_backlog_at_start_goes_out_in_filename_order(daemons, base_args, subscriber,
                                                     mqtt_dir, tmp_path):
    for sub in ("tmp", "new", "failed"):
        (mqtt_dir / sub).mkdir(parents=True)
    names = [f"m{i:04d}" for i in range(1000)]
    for name in reversed(names):  # creation order must not matter
        (mqtt_dir / "new" / name).write_text(message("t/backlog", name))
    daemons([*base_args, f"--messages={mqtt_dir}"], tmp_path)
    received = subscriber.wait_for(1000, timeout=60)
    assert [m.payload.decode() for m in received] == names
    wait_until(lambda: files_in(mqtt_dir / "new") == [], message="new/ empty")


BAD_FILES = {
    "bad-json": "{not json",
    "no-topic": json.dumps({"payload": "x"}),
    "no-payload": json.dumps({"topic": "t/x"}),
    "null-payload": json.dumps({"topic": "t/x", "payload": None}),
    "bad-qos": json.dumps({"topic": "t/x", "payload": "x", "qos": 2}),
    "bool-qos": json.dumps({"topic": "t/x", "payload": "x", "qos": True}),
    "wildcard-plus": json.dumps({"topic": "t/+/x", "payload": "x"}),
    "wildcard-hash": json.dumps({"topic": "t/#", "payload": "x"}),
    "empty-topic": json.dumps({"topic": "", "payload": "x"}),
    "deep-topic": json.dumps({"topic": "a/b/c/d/e/f/g/h/i", "payload": "x"}),
    "long-topic": json.dumps({"topic": "t" * 257, "payload": "x"}),
    "not-object": json.dumps(["topic", "payload"]),
    "huge-payload": json.dumps({"topic": "t/x", "payload": "x" * (128 * 1024 + 1)}),
}


def test_malformed_files_go_to_failed_while_good_ones_go_out(daemons, base_args, subscriber,
                                                             mqtt_dir, tmp_path):
    daemon = daemons([*base_args, f"--messages={mqtt_dir}"], tmp_path)
    daemon.wait_connected()
    for index, (name, content) in enumerate(BAD_FILES.items()):
        write_message(mqtt_dir, name, content)
        write_message(mqtt_dir, f"good-{index:02d}", message("t/good", index))
    subscriber.wait_for(len(BAD_FILES))
    wait_until(lambda: files_in(mqtt_dir / "failed") == sorted(BAD_FILES),
               message="every bad file in failed/")
    assert files_in(mqtt_dir / "new") == []
    log = daemon.log()
    for name in BAD_FILES:
        assert f"{name}: " in log, f"no log line names {name}"
    assert "missing 'topic'" in log and "wildcard" in log and "not JSON" in log


def test_failed_keeps_only_the_newest(daemons, base_args, mqtt_dir, tmp_path):
    daemon = daemons([*base_args, f"--messages={mqtt_dir}",
                      f"--message-keep-failed={mqtt_dir}:3"], tmp_path)
    daemon.wait_connected()
    for index in range(6):
        write_message(mqtt_dir, f"bad{index}", "nope")
        wait_until(lambda: f"bad{index}" in files_in(mqtt_dir / "failed"))
    assert files_in(mqtt_dir / "failed") == ["bad3", "bad4", "bad5"]


def test_nothing_is_published_while_the_link_is_down(daemons, base_args, subscriber, broker,
                                                     subscriber_identity, mqtt_dir, tmp_path):
    daemon = daemons([*base_args, f"--messages={mqtt_dir}"], tmp_path,
                     env={"CHARIOTD_BACKOFF_BASE": "0.2"})
    daemon.wait_connected()
    subscriber.close()
    broker.stop()
    daemon.wait_log(r"connection lost")
    for index in range(20):
        write_message(mqtt_dir, f"m{index:02d}", message("t/later", index))
    assert len(files_in(mqtt_dir / "new")) == 20
    broker.start()
    sub = Subscriber(broker.host, broker.port, *subscriber_identity)
    try:
        sub.wait_for(20)
        wait_until(lambda: files_in(mqtt_dir / "new") == [], message="new/ empty")
    finally:
        sub.close()


@pytest.fixture
def subscriber_identity(test_pki):
    return (test_pki.cafile, test_pki.service_cert, test_pki.service_key)


def test_broker_down_for_5_seconds_during_a_drain(daemons, test_pki, mqtt_dir, tmp_path):
    from conftest import make_certstore

    broker = start_broker(test_pki, tmp_path / "broker", persistence=True)
    try:
        certstore = make_certstore(test_pki, tmp_path / "certstore", broker.endpoint)
        identity = (test_pki.cafile, test_pki.service_cert, test_pki.service_key)
        sub = Subscriber(broker.host, broker.port, *identity, session="drain-watcher")
        for sub_dir in ("tmp", "new", "failed"):
            (mqtt_dir / sub_dir).mkdir(parents=True)
        for index in range(2000):
            (mqtt_dir / "new" / f"m{index:04d}").write_text(message("t/drain", index))
        # Under runit: restarted if it gives up while the broker is away.
        tree = Supervised(lambda: daemons([
            "--clientid=dev1", f"--cacert={test_pki.cafile}", f"--certstore={certstore}",
            f"--messages={mqtt_dir}"], tmp_path))
        wait_until(lambda: len(sub.received()) >= 200, timeout=30, message="drain started")
        broker.stop()  # mosquitto saves the subscriber's session on the way down
        wait_until(lambda: "connection lost" in tree.log(), message="link down")
        down_at = len(files_in(mqtt_dir / "new"))
        time.sleep(5)  # the outage itself is what this test is about
        broker.start()
        wait_until(lambda: files_in(mqtt_dir / "new") == [], timeout=60, message="new/ empty")
        expected = {str(i).encode() for i in range(2000)}
        wait_until(lambda: {m.payload for m in sub.received()} >= expected, timeout=30,
                   message="every message at the subscriber")
        assert 0 < down_at < 2000
        assert files_in(mqtt_dir / "failed") == []
        tree.stop()
        sub.close()
    finally:
        broker.stop()


def test_a_message_that_kills_the_connection_goes_to_failed(daemons, test_pki, mqtt_dir,
                                                            tmp_path):
    """The broker drops the connection on any packet over 4 KB: that file must not jam
    the queue; after its retries it lands in failed/ and the others still go out."""
    from conftest import make_certstore

    broker = start_broker(test_pki, tmp_path / "broker", max_packet_size=4096)
    try:
        certstore = make_certstore(test_pki, tmp_path / "certstore", broker.endpoint)
        sub = Subscriber(broker.host, broker.port, test_pki.cafile, test_pki.service_cert,
                         test_pki.service_key)
        for sub_dir in ("tmp", "new", "failed"):
            (mqtt_dir / sub_dir).mkdir(parents=True)
        for index in range(30):
            (mqtt_dir / "new" / f"m{index:02d}").write_text(message("t/ok", index))
        (mqtt_dir / "new" / "m15-poison").write_text(message("t/poison", "x" * 10000))
        daemon = daemons(["--clientid=dev1", f"--cacert={test_pki.cafile}",
                          f"--certstore={certstore}", f"--messages={mqtt_dir}"], tmp_path,
                         env={"CHARIOTD_BACKOFF_BASE": "0.1"})
        wait_until(lambda: files_in(mqtt_dir / "failed") == ["m15-poison"], timeout=60,
                   message="the poison message in failed/\n" + daemon.log())
        wait_until(lambda: files_in(mqtt_dir / "new") == [], timeout=30, message="new/ empty")
        wait_until(lambda: {m.payload for m in sub.received()} >= {
            str(i).encode() for i in range(30)}, message="all good messages")
        assert "m15-poison: the connection dropped while it was in flight (after 3 attempts)" \
            in daemon.log()
        sub.close()
    finally:
        broker.stop()


def test_jammed_queue_exits_1(daemons, base_args, broker, mqtt_dir, tmp_path):
    daemon = daemons([*base_args, f"--messages={mqtt_dir}",
                      "--default-message-jam-timeout=1", "--default-message-concurrency=2",
                      "--keepalive=60"], tmp_path)
    daemon.wait_connected()
    broker.pause()  # connection open, nothing acknowledged
    try:
        for index in range(3):
            write_message(mqtt_dir, f"m{index}", message("t/jam", index))
        assert daemon.wait_exit(10) == 1
        assert "queue jammed" in daemon.log()
        assert len(files_in(mqtt_dir / "new")) == 3  # nothing lost
    finally:
        broker.resume()
