"""The messages watcher in-process: the real MessagesHandler on a real action directory
(tmp_path, real inotify), with the link played through a FakeMailbox and time on a
FakeLoop (tests/fakes.py)."""

from __future__ import annotations

import json
import os

import pytest

from chariotd import cli
from chariotd.ipc.messages import LinkState, Publish, Published, PublishFailed
from chariotd.watchers.actiondir import ActionDir
from chariotd.watchers.messages import MessagesHandler
from fakes import FakeLoop, FakeMailbox, attach_mailbox, role_context


class Watcher:
    """One --messages directory's watcher, wired as watchers.main.run_messages does."""

    def __init__(self, root, *args):
        self.dir = root / "mqtt"
        for sub in ("tmp", "new", "failed"):
            (self.dir / sub).mkdir(parents=True)
        config = cli.parse(["--clientid=dev1", "--cacert=/ca.pem", "--certstore=/x",
                            f"--messages={self.dir}", *args])
        self.options = config.messages[0]
        self.loop, self.mailbox = FakeLoop(), FakeMailbox("msg0")
        context = role_context(config, "msg0", ["link", "applier"], self.loop, self.mailbox)
        self.actiondir = ActionDir(self.options.path, self.options.keep_failed)
        self.handler = MessagesHandler(context, self.options, self.actiondir)
        self.loop.add_reader(self.actiondir.fileno(), self.handler.on_inotify)
        attach_mailbox(self.loop, self.mailbox, self.handler.handlers())

    def write(self, name, topic=None, **fields):
        tmp = self.dir / "tmp" / name
        tmp.write_text(json.dumps({"topic": topic or f"t/{name}", "payload": name, **fields}))
        os.rename(tmp, self.dir / "new" / name)

    def arrived(self):
        """A pass in which inotify reported what was written."""
        self.loop.readable(self.actiondir.fileno())

    def link(self, *messages):
        """A pass in which MESSAGES from the link are in the mailbox."""
        for message in messages:
            self.mailbox.deliver("link", message)
        self.loop.readable(self.mailbox.socket)

    def publishes(self):
        """The Publish frames sent to the link since the last call."""
        sent = self.mailbox.take()
        assert all(peer == "link" for peer, _ in sent)
        return [m for _, m in sent if isinstance(m, Publish)]

    def topics(self):
        return [topic for frame in self.publishes() for topic in frame.topics]

    def new(self):
        return sorted(os.listdir(self.dir / "new"))

    def failed(self):
        return sorted(os.listdir(self.dir / "failed"))

    def close(self):
        self.handler.close()
        self.actiondir.close()


@pytest.fixture
def make(tmp_path):
    made = []

    def build(*args):
        made.append(Watcher(tmp_path, *args))
        return made[-1]

    yield build
    for watcher in made:
        watcher.close()


def test_nothing_goes_out_until_the_link_is_up_then_all_in_order(make):
    w = make("--default-message-concurrency=2")
    for name in ("c", "a", "b"):
        w.write(name)
    w.write("z", priority=0)
    w.handler.rescan()
    assert w.publishes() == []
    w.link(LinkState(up=True))
    [frame] = w.publishes()  # one frame for the whole pass
    assert frame.topics == ["t/z", "t/a", "t/b", "t/c"]  # prioritised first, then lexical
    assert frame.window == 2 and frame.qos == [1] * 4 and len(set(frame.ids)) == 4


def test_the_link_is_handed_three_windows_and_more_as_acknowledgements_come(make):
    w = make("--default-message-concurrency=2")
    w.link(LinkState(up=True))
    for index in range(10):
        w.write(f"m{index}")
    w.arrived()
    [frame] = w.publishes()
    assert frame.topics == [f"t/m{i}" for i in range(6)] and frame.window == 2
    w.link(Published(ids=frame.ids[:2]))
    assert w.topics() == ["t/m6", "t/m7"]
    assert w.new() == [f"m{i}" for i in range(2, 10)]  # acknowledged: removed from new/


def test_published_removes_the_file_and_nothing_else(make):
    w = make()
    w.link(LinkState(up=True))
    w.write("a")
    w.write("b")
    w.arrived()
    [frame] = w.publishes()
    w.link(Published(ids=[frame.ids[1]]))
    assert w.new() == ["a"] and w.failed() == []
    w.link(Published(ids=[frame.ids[1]]))  # told twice: nothing more happens
    assert w.new() == ["a"] and w.publishes() == []


def test_a_refused_publish_is_retried_then_moved_to_failed(make):
    w = make("--default-message-retries=1")
    w.link(LinkState(up=True))
    w.write("bad")
    w.arrived()
    [frame] = w.publishes()
    w.link(PublishFailed(id=frame.ids[0], reason="payload refused", charge=True))
    [again] = w.publishes()  # retry 1 of 1
    assert again.topics == ["t/bad"] and w.new() == ["bad"]
    w.link(PublishFailed(id=again.ids[0], reason="payload refused", charge=True))
    assert w.publishes() == []
    assert w.new() == [] and w.failed() == ["bad"]


def test_an_uncharged_failure_is_retried_without_end(make):
    w = make("--default-message-retries=0")
    w.link(LinkState(up=True))
    w.write("a")
    w.arrived()
    for _ in range(5):
        [frame] = w.publishes()
        w.link(PublishFailed(id=frame.ids[0], reason="link is down", charge=False))
    assert w.topics() == ["t/a"] and w.failed() == []


def test_link_down_keeps_the_files_in_new_and_resends_suspects_one_at_a_time(make):
    w = make("--default-message-concurrency=3")
    w.link(LinkState(up=True))
    for name in ("a", "b", "c"):
        w.write(name)
    w.arrived()
    [frame] = w.publishes()
    w.link(LinkState(up=False))
    w.write("d")
    w.arrived()
    assert w.publishes() == [] and w.new() == ["a", "b", "c", "d"]
    w.link(LinkState(up=True))
    [first] = w.publishes()  # several were in flight: each is a suspect, alone
    assert first.topics == ["t/a"] and first.window == 1
    w.link(Published(ids=first.ids))
    assert w.topics() == ["t/b"]
    assert w.new() == ["b", "c", "d"] and w.failed() == []


def test_a_message_alone_in_flight_when_the_link_drops_is_charged(make):
    w = make("--default-message-retries=0")
    w.link(LinkState(up=True))
    w.write("poison")
    w.arrived()
    w.publishes()
    w.loop.advance(1.0)  # within POISON_WINDOW of its publish
    w.link(LinkState(up=False))
    assert w.failed() == ["poison"]


def test_a_full_window_without_acknowledgement_ends_the_process(make):
    w = make("--default-message-concurrency=1", "--default-message-jam-timeout=60")
    w.link(LinkState(up=True))
    w.write("a")
    w.arrived()
    w.loop.advance(59.9)
    assert w.loop.status is None
    w.loop.advance(0.2)
    assert w.loop.status == 1


def test_an_unparsable_file_goes_to_failed_at_once(make):
    w = make()
    w.link(LinkState(up=True))
    (w.dir / "tmp" / "junk").write_text("{not json")
    os.rename(w.dir / "tmp" / "junk", w.dir / "new" / "junk")
    w.write("ok")
    w.arrived()
    assert w.topics() == ["t/ok"] and w.failed() == ["junk"]
