"""Spawner's cap: at most max_children commands run at once, the rest wait in a FIFO
queue and start as others finish, each timed from its own start (real processes)."""

from __future__ import annotations

import signal
import time

import pytest

from chariotd.kernel.loop import Loop
from chariotd.kernel.spawn import Spawner


@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def run_all(loop, spawner, commands, timeout=5.0):
    """Run COMMANDS (shell text) through SPAWNER; (index, result) in finishing order."""
    finished = []

    def done(index, result):
        finished.append((index, result))
        if len(finished) == len(commands):
            loop.stop(0)

    loop.call_later(20, lambda: loop.stop(1))  # a safety net, never reached
    for index, command in enumerate(commands):
        spawner.run(["/bin/sh", "-c", command], lambda r, i=index: done(i, r),
                    timeout=timeout)
    try:
        assert loop.run() == 0
    finally:
        spawner.kill_all()
    return finished


class RecordingSpawner(Spawner):
    """Records the order in which commands really start."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = []

    def _start(self, argv, *args, **kwargs):
        self.order.append(argv[-1])
        return super()._start(argv, *args, **kwargs)


def test_no_more_than_the_cap_run_at_once_and_the_rest_start_in_order(tmp_path, loop):
    spawner = RecordingSpawner(loop, max_children=3)
    peak = []
    loop.after_each(lambda: peak.append(len(spawner.children)))
    log = tmp_path / "log"
    commands = [f"echo start {n} >> {log}; sleep 0.1; echo end {n} >> {log}"
                for n in range(10)]
    finished = run_all(loop, spawner, commands)
    assert all(result.ok for _, result in finished)
    lines = log.read_text().split("\n")[:-1]
    running = highest = 0
    for line in lines:
        running += 1 if line.startswith("start") else -1
        highest = max(highest, running)
    assert highest <= 3 and max(peak) <= 3
    assert len(lines) == 20
    assert spawner.order == commands  # the queue is first in, first out
    assert not spawner.children and not spawner.waiting


def test_a_queued_command_is_timed_from_its_own_start(loop):
    spawner = Spawner(loop, max_children=1)
    started = time.monotonic()
    finished = dict(run_all(loop, spawner, ["sleep 0.6", "sleep 0.3"], timeout=0.9))
    # Timed from the queueing, the second would be killed at 0.9 s, 0.3 s before its end.
    assert finished[0].ok and finished[1].ok, (finished[0].describe(),
                                               finished[1].describe())
    assert time.monotonic() - started >= 0.9


def test_a_command_that_cannot_start_frees_its_turn(tmp_path, loop):
    spawner = Spawner(loop, max_children=1)
    finished = []

    def done(name, result):
        finished.append((name, result.status))
        if len(finished) == 3:
            loop.stop(0)

    loop.call_later(10, lambda: loop.stop(1))
    spawner.run(["/bin/sh", "-c", "sleep 0.1"], lambda r: done("first", r), timeout=5)
    spawner.run([str(tmp_path / "missing")], lambda r: done("missing", r), timeout=5)
    spawner.run(["/bin/sh", "-c", "exit 3"], lambda r: done("last", r), timeout=5)
    assert loop.run() == 0
    assert finished == [("first", 0), ("missing", 127), ("last", 3)]
