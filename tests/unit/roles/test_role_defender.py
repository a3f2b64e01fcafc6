"""The defender role in-process (tests/fakes.py): when reports go to the link, what a
`published`, a `publish_failed`, the link going down and a failed report id do to the
next report, and the log lines of the cloud's replies. The real Collector reads a
/proc/net the test writes, so the traffic deltas are known."""

from __future__ import annotations

import json
import logging
from collections import deque

import pytest

from chariotd import cli
from chariotd.defender import main as defender_main
from chariotd.defender.collect import Collector
from chariotd.defender.report_id import ReportIds
from chariotd.defender.schedule import FIRST_DELAY, ReportSchedule
from chariotd.ipc.messages import (DefenderReply, LinkState, Publish, Published,
                                   PublishFailed)
from chariotd.kernel.runtime import DEFENDER, LINK
from fakes import FakeLoop, FakeMailbox, attach_mailbox, role_context

INTERVAL = 300


def dev_table(bytes_in: int, bytes_out: int) -> str:
    return ("Inter-|   Receive |  Transmit\n face |bytes packets ...|bytes packets ...\n"
            f"  eth0: {bytes_in} 10 0 0 0 0 0 0 {bytes_out} 5 0 0 0 0 0 0\n")


class Rig:
    def __init__(self, tmp_path, *args):
        self.proc = tmp_path / "proc"
        self.proc.mkdir()
        for name in ("tcp", "tcp6", "udp", "udp6", "if_inet6"):
            (self.proc / name).write_text("")
        self.traffic(1000, 100)
        self.custom = tmp_path / "custom"
        self.custom.mkdir()
        self.state = tmp_path / "report-id"
        config = cli.parse(["--clientid=dev1", "--cacert=/ca.pem", f"--certstore={tmp_path}",
                            "--defender=dev1", f"--defender-custom={self.custom}", *args])
        self.loop = FakeLoop()
        self.mailbox = FakeMailbox(DEFENDER)
        context = role_context(config, DEFENDER, (LINK,), self.loop, self.mailbox)
        context = context._replace(role=context.role._replace(options=config.defender))
        self.wall = 1_700_000_000.0
        collector = Collector(ReportIds(self.state, clock=lambda: self.wall),
                              str(self.custom), config.defender.short_names,
                              proc_net=str(self.proc))
        self.defender = defender_main.Defender(
            context, collector, ReportSchedule(config.defender.interval))
        attach_mailbox(self.loop, self.mailbox, self.defender.handlers())

    def traffic(self, bytes_in: int, bytes_out: int) -> None:
        (self.proc / "dev").write_text(dev_table(bytes_in, bytes_out))

    def deliver(self, *messages) -> None:
        for message in messages:
            self.mailbox.deliver(LINK, message)
        self.loop.readable(self.mailbox.socket)

    def link(self, up: bool) -> None:
        self.deliver(LinkState(up=up, client_id="dev1"))

    def reports(self):
        """The reports handed to the link since the last call, as (request id, doc)."""
        sent = [m for peer, m in self.mailbox.take() if peer == LINK]
        assert all(isinstance(m, Publish) for m in sent)
        return [(m.ids[0], json.loads(m.payloads[0])) for m in sent]


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


def test_no_report_while_the_link_is_down_the_first_soon_after_it_comes_up(rig):
    rig.loop.advance(3 * INTERVAL)
    assert rig.reports() == [] and rig.loop.next_due() is None  # no timer, no CPU
    rig.link(True)
    rig.loop.advance(FIRST_DELAY - 0.1)
    assert rig.reports() == []
    rig.loop.advance(0.1)
    [(request_id, doc)] = rig.reports()
    assert doc["header"]["version"] == "1.0"
    assert doc["header"]["report_id"] == int(rig.wall * 1000)
    assert set(doc["metrics"]["network_stats"].values()) == {0}  # first report of a run
    rig.loop.advance(INTERVAL)
    [(_, second)] = rig.reports()
    assert second["header"]["report_id"] > doc["header"]["report_id"]


def test_the_report_is_a_qos1_publish_on_the_json_topic_with_a_window_of_one(rig):
    rig.link(True)
    rig.loop.advance(FIRST_DELAY)
    [(peer, publish)] = rig.mailbox.take()
    assert peer == LINK
    assert publish.topics == ["$aws/things/dev1/defender/metrics/json"]
    assert publish.qos == [1] and publish.window == 1 and len(publish.ids) == 1


def test_traffic_counts_from_the_last_published_report(rig):
    rig.link(True)
    rig.loop.advance(FIRST_DELAY)
    [(first_id, _)] = rig.reports()
    rig.deliver(Published(ids=[first_id]))
    rig.traffic(1500, 130)
    rig.loop.advance(INTERVAL)
    [(second_id, doc)] = rig.reports()
    stats = doc["metrics"]["network_stats"]
    assert (stats["bytes_in"], stats["bytes_out"]) == (500, 30)
    # not acknowledged: the third report counts from the first one's baseline too
    rig.deliver(PublishFailed(id=second_id, reason="link is down", charge=False))
    rig.traffic(1600, 140)
    rig.loop.advance(INTERVAL)
    [(_, doc)] = rig.reports()
    stats = doc["metrics"]["network_stats"]
    assert (stats["bytes_in"], stats["bytes_out"]) == (600, 40)


def test_a_report_due_while_the_link_is_down_is_replaced_not_queued(rig, caplog):
    rig.link(True)
    rig.loop.advance(FIRST_DELAY)
    [(first_id, _)] = rig.reports()
    with caplog.at_level(logging.INFO):
        rig.link(False)  # before its PUBACK: it may be lost
    assert "not acknowledged before the link went down" in caplog.text
    rig.loop.advance(10 * INTERVAL)
    assert rig.reports() == []
    rig.link(True)
    rig.loop.advance(FIRST_DELAY)
    assert len(rig.reports()) == 1  # one report for the whole time down
    rig.loop.advance(INTERVAL - 1)
    assert rig.reports() == []
    rig.deliver(Published(ids=[first_id]))  # a stale acknowledgement moves nothing
    assert rig.defender.pending is not None


def test_after_a_short_outage_the_rate_still_holds(rig):
    rig.link(True)
    rig.loop.advance(FIRST_DELAY)
    assert len(rig.reports()) == 1
    rig.loop.advance(10)
    rig.link(False)
    rig.link(True)
    rig.loop.advance(INTERVAL - 11)
    assert rig.reports() == []  # never two within an interval, reconnect or not
    rig.loop.advance(1)
    assert len(rig.reports()) == 1


def test_a_report_id_that_cannot_be_saved_skips_that_report(rig, caplog):
    rig.state.mkdir()  # the atomic rename over a directory fails
    rig.link(True)
    with caplog.at_level(logging.ERROR):
        rig.loop.advance(FIRST_DELAY)
    assert rig.reports() == []
    assert "report skipped: cannot take the next report id" in caplog.text
    rig.state.rmdir()
    rig.loop.advance(INTERVAL - 1)
    assert rig.reports() == []  # the skipped one counted for the rate
    rig.loop.advance(1)
    assert len(rig.reports()) == 1


def test_bad_custom_metric_is_logged_and_the_report_still_goes(rig, caplog):
    (rig.custom / "temp").write_text("47.5")
    (rig.custom / "broken").write_text("{")
    rig.link(True)
    with caplog.at_level(logging.WARNING):
        rig.loop.advance(FIRST_DELAY)
    [(_, doc)] = rig.reports()
    assert doc["custom_metrics"] == {"temp": [{"number": 47.5}]}
    assert "custom metric 'broken' left out: not JSON" in caplog.text


def test_short_names(tmp_path):
    rig = Rig(tmp_path, "--defender-short-names")
    rig.link(True)
    rig.loop.advance(FIRST_DELAY)
    [(_, doc)] = rig.reports()
    assert set(doc) == {"hed", "met"} and doc["hed"]["v"] == "1.0"


def reply(report_id, code=""):
    return DefenderReply(thing="dev1", accepted=not code, report_id=report_id, code=code,
                         message="one report per 300 s" if code else "")


def test_the_reply_to_each_report_is_logged_once_a_rejection_with_its_code(rig, caplog):
    rig.link(True)
    rig.loop.advance(FIRST_DELAY)
    [(_, doc)] = rig.reports()
    first = doc["header"]["report_id"]
    with caplog.at_level(logging.INFO):
        rig.deliver(reply(first), reply(first), reply(first + 1, "Throttled"))
    assert [r.getMessage() for r in caplog.records] == [
        f"report {first} accepted by Device Defender"]  # the rest: debug lines only
    caplog.clear()
    rig.wall += 300
    rig.loop.advance(INTERVAL)
    [(_, doc)] = rig.reports()
    second = doc["header"]["report_id"]
    with caplog.at_level(logging.INFO):
        rig.deliver(reply(None, "Throttled"), reply(second))
    assert [r.getMessage() for r in caplog.records] == [
        f"report {second} rejected by Device Defender: Throttled: one report per 300 s"]


def test_a_flood_of_made_up_replies_logs_nothing_above_debug(rig, caplog):
    with caplog.at_level(logging.INFO):
        rig.deliver(*[reply(n, "Bogus" if n % 2 else "") for n in range(1, 200)])
        rig.loop.readable(rig.mailbox.socket)  # a pass takes at most 100 frames
    assert rig.mailbox.socket.frames == deque()
    assert caplog.records == [] and rig.reports() == []


def test_timing_seam_reads_the_environment_and_ignores_what_is_malformed(caplog):
    seam = defender_main.timing_from_environment
    assert seam({}, 300) == (FIRST_DELAY, 300, None)
    assert seam({"CHARIOTD_DEFENDER_TIMING": "first=0.5,interval=2"}, 300) == (0.5, 2.0, 2.0)
    with caplog.at_level(logging.WARNING):
        assert seam({"CHARIOTD_DEFENDER_TIMING": "first=99,interval=x,bogus=1"}, 600) == (
            FIRST_DELAY, 600, None)
    assert caplog.text.count("ignored CHARIOTD_DEFENDER_TIMING entry") == 3
