"""The jobs role in-process (tests/fakes.py): one worker per --jobs thing; the link
going up asks each thing's start-next; a message reaches only its thing's machine; a
request the link could not publish is asked again after the backoff, for its thing
only; hostile messages are a log line, never a crash."""

from __future__ import annotations

import json
import logging

import pytest

from chariotd import cli
from chariotd.ipc.messages import LinkState, Message, Publish, Published, PublishFailed
from chariotd.jobs import main as jobs_main
from chariotd.jobs.machine import BACKOFF_FIRST
from chariotd.jobs.state import state_dir_problem
from chariotd.kernel.runtime import JOBS, LINK
from fakes import FakeLoop, FakeMailbox, attach_mailbox, role_context

THINGS = ("dev1", "dev2")


class Rig:
    def __init__(self, tmp_path):
        handlers = tmp_path / "handlers"
        handlers.mkdir()
        handlers.chmod(0o755)
        config = cli.parse(["--clientid=dev1", "--cacert=/ca.pem", f"--certstore={tmp_path}",
                            *(f"--jobs={t}:{handlers}" for t in THINGS)])
        assert state_dir_problem(config.jobs.state_of(str(handlers))) is None
        self.loop = FakeLoop()
        self.mailbox = FakeMailbox(JOBS)
        context = role_context(config, JOBS, (LINK,), self.loop, self.mailbox)
        self.jobs = jobs_main.Jobs(context)
        for thing, directory in config.jobs.things:
            self.jobs.add(thing, directory, config.jobs)
        attach_mailbox(self.loop, self.mailbox, self.jobs.handlers())
        self.jobs.start()

    def deliver(self, *messages) -> None:
        for message in messages:
            self.mailbox.deliver(LINK, message)
        self.loop.readable(self.mailbox.socket)

    def requests(self):
        """(request id, thing, api, token) of each publish handed to the link since the
        last call."""
        out = []
        for peer, message in self.mailbox.take():
            assert peer == LINK and isinstance(message, Publish)
            assert message.qos == [1] and message.window == 1 and len(message.ids) == 1
            topic = message.topics[0]
            thing = topic.split("/")[2]
            api = topic.split("/jobs/", 1)[1]
            out.append((message.ids[0], thing, api,
                        json.loads(message.payloads[0])["clientToken"]))
        return out


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


def test_link_up_asks_start_next_for_each_thing_and_nothing_before(rig):
    assert rig.requests() == []
    rig.deliver(LinkState(up=True, client_id="dev1"))
    assert sorted((thing, api) for _, thing, api, _ in rig.requests()) == [
        ("dev1", "start-next"), ("dev2", "start-next")]


def test_a_reply_reaches_only_its_thing(rig):
    rig.deliver(LinkState(up=True))
    tokens = {thing: token for _, thing, _, token in rig.requests()}
    # dev2 hears that nothing is pending; dev1's request is still in flight
    rig.deliver(Message(topic="$aws/things/dev2/jobs/start-next/accepted",
                        payload=json.dumps({"clientToken": tokens["dev2"]}).encode()))
    assert rig.jobs.workers["dev2"].jobs.inflight is None
    assert rig.jobs.workers["dev1"].jobs.inflight.token == tokens["dev1"]
    # dev1's token on dev2's topic is stale there, not an answer for dev1
    rig.deliver(Message(topic="$aws/things/dev2/jobs/start-next/accepted",
                        payload=json.dumps({"clientToken": tokens["dev1"]}).encode()))
    assert rig.jobs.workers["dev1"].jobs.inflight.token == tokens["dev1"]


def test_publish_failed_asks_again_after_the_backoff_for_that_thing_only(rig):
    rig.deliver(LinkState(up=True))
    sent = {thing: request_id for request_id, thing, _, _ in rig.requests()}
    rig.deliver(Published(ids=[sent["dev2"]]), PublishFailed(id=sent["dev1"],
                                                              reason="queue full", charge=True))
    assert rig.requests() == []
    rig.loop.advance(BACKOFF_FIRST + 0.01)
    assert [(thing, api) for _, thing, api, _ in rig.requests()] == [("dev1", "start-next")]
    rig.deliver(PublishFailed(id=999, reason="not ours", charge=True))  # unknown id: no-op
    assert rig.requests() == []


def test_link_down_then_up_asks_again_and_forgets_what_was_at_the_link(rig):
    rig.deliver(LinkState(up=True))
    first = rig.requests()
    rig.deliver(LinkState(up=False))
    assert rig.jobs.pending == {}
    rig.deliver(*(PublishFailed(id=r, reason="link is down", charge=False)
                  for r, _, _, _ in first))
    assert rig.requests() == []  # the link is down: nothing asked
    rig.deliver(LinkState(up=True))
    assert sorted(thing for _, thing, _, _ in rig.requests()) == ["dev1", "dev2"]


@pytest.mark.parametrize("topic,payload", [
    ("$aws/things/dev1/jobs/notify-next", b"{"),
    ("$aws/things/dev1/jobs/notify-next", b'{"execution":{"jobId":"../x","status":1}}'),
    ("$aws/things/dev1/jobs/start-next/rejected", b'{"code":7}'),
    ("$aws/things/dev9/jobs/notify-next", b"{}"),
    ("$aws/things/dev1/jobs/a/b/c/d", b"{}"),
    ("not/a/jobs/topic", b"\xff")])
def test_hostile_messages_are_a_log_line_at_most(rig, caplog, topic, payload):
    rig.deliver(LinkState(up=True))
    rig.requests()
    with caplog.at_level(logging.DEBUG):
        rig.deliver(Message(topic=topic, payload=payload))
    assert rig.requests() == []
    assert "ignored" in caplog.text
