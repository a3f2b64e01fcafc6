"""--subscribe-write and --subscribe-exec: the real tree against chariotd-sim."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from support import alive, wait_until


class Device:
    def __init__(self, sim, tmp_path: Path):
        self.sim = sim
        self.root = tmp_path / "dev1"
        self.root.mkdir()
        self.certstore = sim.device("dev1")

    def args(self, *extra):
        return ["--clientid=dev1", f"--cacert={self.sim.cafile}",
                f"--certstore={self.certstore}", *extra]

    def script(self, name: str, body: str) -> Path:
        path = self.root / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
        return path


@pytest.fixture
def device(sim, tmp_path):
    return Device(sim, tmp_path)


def start(daemons, device, tmp_path, *extra):
    daemon = daemons(device.args(*extra), tmp_path)
    daemon.wait_log(r"subscribed to \d+ topic filters")
    return daemon


def lines(path: Path):
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def test_write_to_fifos_and_a_regular_file(daemons, device, tmp_path):
    with_reader, without_reader = device.root / "with-reader", device.root / "no-reader"
    os.mkfifo(with_reader)
    os.mkfifo(without_reader)
    regular = device.root / "regular"
    regular.write_text("old content that is longer than the message\n")
    missing = device.root / "missing"
    daemon = start(daemons, device, tmp_path,
                   f"--subscribe-write=fifo/read:{with_reader}",
                   f"--subscribe-write=fifo/noreader:{without_reader}",
                   f"--subscribe-write=file/x:{regular}",
                   f"--subscribe-write=file/missing:{missing}")
    reader = os.open(with_reader, os.O_RDONLY | os.O_NONBLOCK)
    try:
        received = bytearray()

        def read_some():
            try:
                received.extend(os.read(reader, 65536))
            except BlockingIOError:
                pass
            return received

        first = b"\x00binary payload\xff"
        device.sim.publish("fifo/read", first)
        wait_until(lambda: read_some() == first, message="FIFO data")
        big = bytes(range(256)) * 400  # 100 kB: more than a pipe holds at once
        device.sim.publish("fifo/read", big)
        wait_until(lambda: len(read_some()) >= len(first) + len(big), message="big message")
        assert received[len(first):] == big
    finally:
        os.close(reader)

    # No reader: the message is lost with a warning, and nothing stalls.
    device.sim.publish("fifo/noreader", "lost")
    daemon.wait_log(r"no reader on .*no-reader; the message on fifo/noreader is lost")
    device.sim.publish("file/x", "new")
    wait_until(lambda: regular.read_text() == "new", message="regular file rewritten")

    device.sim.publish("file/missing", "dropped")
    daemon.wait_log(r"cannot open .*missing: No such file or directory; the message on "
                    r"file/missing is dropped")
    assert not missing.exists()  # never created: a FIFO is made by its reader
    assert daemon.process.poll() is None


def test_exec_one_at_a_time_with_the_payload_on_stdin_and_wildcards(daemons, device,
                                                                    tmp_path):
    journal = device.root / "journal"
    handler = device.script("handler", f"""\
echo "start $MESSAGE_TOPIC $(cat)" >> {journal}
sleep 0.2
echo "end $MESSAGE_TOPIC" >> {journal}
""")
    hashes = device.root / "hashes"
    plus = device.script("plus", f'echo "$MESSAGE_TOPIC $(cat)" >> {hashes}\n')
    start(daemons, device, tmp_path, f"--subscribe-exec=jobs/+/run:{handler}",
          f"--subscribe-exec=w/#:{plus}", f"--subscribe-exec=w/x/+:{plus}")
    for index in range(3):
        device.sim.publish(f"jobs/j{index}/run", f"payload {index}")
    device.sim.publish("jobs/j9/other", "no match")
    wait_until(lambda: len(lines(journal)) == 6, message="three runs")
    assert lines(journal) == [
        "start jobs/j0/run payload 0", "end jobs/j0/run",
        "start jobs/j1/run payload 1", "end jobs/j1/run",
        "start jobs/j2/run payload 2", "end jobs/j2/run"]

    # a/# does not match a (as on AWS); w/x/+ is covered by w/#, and each
    # subscription still runs once per message.
    device.sim.publish("w", "parent")
    device.sim.publish("w/", "empty level")
    device.sim.publish("w/x/y", "deep")
    device.sim.publish("w/x/end", "last")  # both subscriptions run in arrival order
    wait_until(lambda: lines(hashes).count("w/x/end last") == 2, message="wildcard runs")
    assert sorted(lines(hashes)) == ["w/ empty level", "w/x/end last", "w/x/end last",
                                     "w/x/y deep", "w/x/y deep"]


def test_a_hanging_handler_is_killed_after_5_seconds(daemons, device, tmp_path):
    out, pidfile = device.root / "out", device.root / "pid"
    handler = device.script("handler", f"""\
read line
if [ "$line" = hang ]; then echo $$ > {pidfile}; exec sleep 60; fi
echo "$line" >> {out}
""")
    fast = device.root / "fast"
    other = device.script("other", f"cat >> {fast}\n")
    daemon = start(daemons, device, tmp_path, f"--subscribe-exec=slow:{handler}",
                   f"--subscribe-exec=quick:{other}")
    started = time.monotonic()
    device.sim.publish("slow", "hang")
    device.sim.publish("slow", "after")
    device.sim.publish("quick", "not stalled")
    wait_until(lambda: lines(fast) == ["not stalled"], message="other subscription")
    assert time.monotonic() - started < 4
    wait_until(lambda: lines(out) == ["after"], timeout=10, message="next message")
    assert time.monotonic() - started >= 4.9
    assert "the handler for a message on slow timed out and was killed" in daemon.log()
    assert not alive(int(pidfile.read_text()))
