"""The link with --jobs (tests/fakes.py: LinkRig): it subscribes to each jobs thing's
notify-next and reply topics before it counts as up, and hands every message on a
`$aws/things/THING/jobs/...` topic of a --jobs thing to the jobs role as it came; the
jobs of other things stay with nobody."""

from __future__ import annotations

import pytest

from chariotd.aws import jobs_topics
from chariotd.ipc.messages import LinkState, Message
from chariotd.kernel.runtime import JOBS
from fakes import LinkRig


@pytest.fixture
def rig(tmp_path, monkeypatch):
    handlers = tmp_path / "h"
    handlers.mkdir()
    made = LinkRig(tmp_path, monkeypatch,
                   args=[f"--jobs=dev1:{handlers}", f"--jobs=dev2:{handlers}"],
                   peers=("applier", JOBS))
    yield made
    made.close()


def test_subscribes_to_every_jobs_topic_of_each_thing(rig):
    client = rig.up()
    filters = {f for _, batch in client.subscribed for f in batch}
    for thing in ("dev1", "dev2"):
        assert set(jobs_topics.subscriptions(thing)) <= filters
    assert rig.mailbox.sent_to(JOBS, LinkState) == [LinkState(up=True, client_id="dev1")]


def test_jobs_messages_reach_the_jobs_role_others_do_not(rig):
    client = rig.up()
    sent = [("$aws/things/dev1/jobs/notify-next", b'{"timestamp":1}'),
            ("$aws/things/dev2/jobs/j1/update/accepted", b"not even json"),
            ("$aws/things/dev3/jobs/notify-next", b"{}"),
            ("$aws/things/dev1/shadow/get/accepted", b"{}"),
            ("$aws/things/dev1/jobsx/notify-next", b"{}")]
    for topic, payload in sent:
        rig.read(client.message(topic, payload))
    assert rig.mailbox.sent_to(JOBS, Message) == [Message(*sent[0]), Message(*sent[1])]


@pytest.mark.parametrize("topic,thing", [
    ("$aws/things/dev1/jobs/notify-next", "dev1"),
    ("$aws/things/a-b_c/jobs/x/get/rejected", "a-b_c"),
    ("$aws/things/dev1/jobs", None), ("$aws/things//jobs/x", None),
    ("$aws/things/dev1/shadow/jobs/x", None), ("dev1/jobs/x", None)])
def test_thing_of(topic, thing):
    assert jobs_topics.thing_of(topic) == thing
