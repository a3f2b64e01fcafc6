"""A subscription handles one message at a time and queues at most QUEUE_LIMIT more;
beyond that new messages are dropped and counted."""

import logging
import os

from chariotd.kernel import safe_open
from chariotd.services.subscriptions import QUEUE_LIMIT, Subscriptions, _Subscription


class FakeLoop:
    def __init__(self):
        self.soon = []

    def call_later(self, delay, callback):
        self.soon.append(callback)

    def forget(self, key):
        pass

    def run_soon(self):
        while self.soon:
            self.soon.pop(0)()


class Recording(_Subscription):
    kind = "test"

    def __init__(self, loop):
        super().__init__("t/+", "/nowhere", loop)
        self.handled = []

    def handle(self, topic, payload):
        self.handled.append(payload)


def test_one_at_a_time_then_bounded_queue(caplog):
    loop = FakeLoop()
    sub = Recording(loop)
    caplog.set_level(logging.WARNING)
    for index in range(QUEUE_LIMIT + 5):
        sub.deliver("t/x", b"%d" % index)
    assert sub.handled == [b"0"]  # the rest wait
    assert len(sub.queue) == QUEUE_LIMIT
    assert sub.dropped == 4 and caplog.text.count("dropping new ones") == 1
    for _ in range(QUEUE_LIMIT):
        sub.finished()
        loop.run_soon()
    assert sub.handled == [b"%d" % i for i in range(QUEUE_LIMIT + 1)]
    assert "4 messages were dropped" in caplog.text and sub.dropped == 0


def test_only_matching_subscriptions_get_a_message(tmp_path):
    loop = FakeLoop()
    target = tmp_path / "file"
    target.write_text("")
    subs = Subscriptions([("a/#", str(target))], [], loop, spawner=None)
    assert not subs.deliver("a", b"parent")  # AWS: a/# does not match a
    assert subs.deliver("a/b", b"hello")
    assert target.read_bytes() == b"hello"
    assert safe_open.OPEN_FLAGS & os.O_NONBLOCK and safe_open.OPEN_FLAGS & os.O_NOFOLLOW
