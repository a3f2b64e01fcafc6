"""--subscribe-exec with a real loop and spawner: a topic no child can be given (a NUL,
from a broker that ignores MQTT's rule) drops that message with one log line, and the
next message is handled."""

import logging
import signal

from chariotd.kernel.loop import Loop
from chariotd.services.subscriptions import ExecSubscription
from chariotd.kernel.spawn import Spawner
from support import wait_until


def test_a_topic_with_a_nul_is_dropped_and_the_next_message_runs(tmp_path, caplog):
    handled = tmp_path / "handled"
    handler = tmp_path / "handler"
    handler.write_text(f'#!/bin/sh\nprintf "%s\\n" "$MESSAGE_TOPIC" >> {handled}\n')
    handler.chmod(0o755)
    loop = Loop()
    try:
        subscription = ExecSubscription("in/#", str(handler), loop, Spawner(loop))
        caplog.set_level(logging.INFO)
        subscription.deliver("in/a\0b", b"x")
        subscription.deliver("in/\ud800", b"x")
        subscription.deliver("in/ok", b"y")

        def poll():
            if handled.exists() and not subscription.busy:
                loop.stop(0)
            else:
                loop.call_later(0.02, poll)

        loop.call_later(0.02, poll)
        loop.call_later(10, lambda: loop.stop(1))
        assert loop.run() == 0
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    wait_until(lambda: handled.read_text() == "in/ok\n")
    refused = [r.getMessage() for r in caplog.records if "was not started" in r.getMessage()]
    assert len(refused) == 2
    assert refused[0].endswith("a message was dropped: its handler was not started: "
                               "environment variable MESSAGE_TOPIC 'in/a\\x00b' holds a NUL "
                               "at character 4")
    assert "'in/\\ud800' holds text that cannot be encoded" in refused[1]
    assert all("\0" not in line for line in refused)
