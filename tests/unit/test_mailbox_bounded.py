"""A flood of frames on a mailbox does not starve the loop: each pass takes at most
PASS_LIMIT frames, timers and signals run between passes, and the loop comes back for
the rest without any new frame arriving (zmq_poll reports a waiting frame every time)."""

from __future__ import annotations

import os
import signal
import time

import pytest
import zmq

from chariotd.ipc.mailbox import PASS_LIMIT, Mailbox
from chariotd.ipc.messages import Applied
from chariotd.kernel.loop import Loop


@pytest.fixture
def mailboxes(tmp_path):
    context = zmq.Context(1)
    receiver = Mailbox(context, str(tmp_path), "applier")
    sender = Mailbox(context, str(tmp_path), "updates")
    yield receiver, sender
    sender.close()
    receiver.close()
    context.term()


@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)


def flood(sender, count):
    for number in range(count):
        sender.send("applier", Applied(id=number))


def wait_queued(receiver):
    """The first frames have crossed the ipc socket: POLLIN is up on the receiving end."""
    assert zmq.select([receiver.socket], [], [], 5)[0]


def test_a_pass_takes_at_most_the_limit_and_the_loop_comes_back_for_the_rest(
        mailboxes, loop):
    receiver, sender = mailboxes
    total = PASS_LIMIT * 3 + 17
    flood(sender, total)
    wait_queued(receiver)
    passes, current, got = [], [0], []

    def on_applied(_, message):
        current[0] += 1
        got.append(message.id)
        if len(got) == total:
            loop.stop(0)

    def end_of_pass():
        if current[0]:
            passes.append(current[0])
        current[0] = 0

    loop.after_each(end_of_pass)
    loop.call_later(5, lambda: loop.stop(1))  # a safety net
    loop.add_reader(receiver.socket, lambda: receiver.dispatch({Applied: on_applied}))
    assert loop.run() == 0
    end_of_pass()
    assert got == list(range(total))  # all of them, in order, none lost
    assert max(passes) <= PASS_LIMIT and len(passes) >= 4, passes


def test_timers_and_signals_run_while_the_flood_lasts(mailboxes, loop):
    receiver, sender = mailboxes
    total = PASS_LIMIT * 10
    flood(sender, total)
    wait_queued(receiver)
    got, timer_at, signal_at = [], [], []

    def on_applied(_, message):
        got.append(message.id)
        if len(got) == 1:  # a SIGCHLD or SIGTERM arriving mid-flood
            os.kill(os.getpid(), signal.SIGUSR1)
        if len(got) == total:
            loop.stop(0)

    loop.on_signal(signal.SIGUSR1, lambda: signal_at.append(len(got)))
    loop.call_later(0, lambda: timer_at.append(len(got)))
    loop.call_later(5, lambda: loop.stop(1))
    loop.add_reader(receiver.socket, lambda: receiver.dispatch({Applied: on_applied}))
    assert loop.run() == 0
    # Both ran after the first pass, long before the last frame was taken.
    assert timer_at and timer_at[0] <= PASS_LIMIT, timer_at
    assert signal_at and signal_at[0] <= 2 * PASS_LIMIT, signal_at


def test_receive_takes_at_most_limit_frames(mailboxes):
    receiver, sender = mailboxes
    flood(sender, 30)
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 30 and time.monotonic() < deadline:
        wait_queued(receiver)
        batch = [m.id for _, m in receiver.receive(limit=7)]
        assert len(batch) <= 7
        got += batch
    assert got == list(range(30))
    assert list(receiver.receive()) == []
