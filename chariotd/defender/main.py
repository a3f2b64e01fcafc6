"""The defender role, `chariotd: defender THING` (only with --defender): reports THING's
network and custom metrics to Device Defender (IOT_CORE.md 8).

One loop with one timer, from the schedule: the first report FIRST_DELAY after the link
comes up, then one every --defender-interval. A report is built when it is due (never
while the link is down: a report that falls due then is replaced by the next, not
queued), handed to the link as a QoS 1 `publish` on `$aws/things/THING/defender/metrics/
json`, and its traffic counters become the baseline only once the link says it was
published (`published`): a lost report's traffic is counted in the next one. The link
hands back the cloud's answers as `defender_reply`, logged (a rejection with its code).

The report id state file is `.defender-THING.report-id` in the certstore: the one
directory the daemon must be able to write at start, that survives reboots, and that is
root's; the certstore ignores names starting with '.'.

Test seam: CHARIOTD_DEFENDER_TIMING="first=0.5,interval=3" (seconds), read when the
role starts, shortens the first delay and the interval below AWS's 300 s minimum; a
device never sets it (a warning line says it is in use).
"""

from __future__ import annotations

import itertools
import logging
import os
from typing import Mapping, Optional, Tuple

from chariotd.aws.defender_topics import report_topic
from chariotd.config import DefenderConfig
from chariotd.defender.collect import Built, Collector
from chariotd.defender.report_id import ReportIds
from chariotd.defender.schedule import FIRST_DELAY, ReportSchedule
from chariotd.ipc.messages import DefenderReply, LinkState, Publish, Published, PublishFailed
from chariotd.kernel.fsutil import remove_stale_temps
from chariotd.kernel.runtime import LINK, RoleContext

log = logging.getLogger(__name__)

TIMING_ENV = "CHARIOTD_DEFENDER_TIMING"


def state_path(certstore: str, thing: str) -> str:
    return os.path.join(certstore, f".defender-{thing}.report-id")


def timing_from_environment(environ: Mapping[str, str],
                            interval: float) -> Tuple[float, float, Optional[float]]:
    """(first delay, interval, minimum interval or None for the schedule's own) with the
    test seam applied; a malformed entry is logged and ignored."""
    first, minimum = FIRST_DELAY, None
    for entry in filter(None, (e.strip() for e in environ.get(TIMING_ENV, "").split(","))):
        name, _, value = entry.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if name == "first" and 0 <= seconds <= 15:
            first = seconds
        elif name == "interval" and 0 < seconds <= 86400:
            interval = minimum = seconds
        else:
            log.warning("ignored %s entry %r", TIMING_ENV, entry)
            continue
        log.warning("%s: %s=%g s (a test setting)", TIMING_ENV, name, seconds)
    return first, interval, minimum


class Defender:
    def __init__(self, context: RoleContext, collector: Collector, schedule: ReportSchedule):
        self.context = context
        self.loop = context.loop
        self.mailbox = context.mailbox
        self.options: DefenderConfig = context.role.options
        self.topic = report_topic(self.options.thing)
        self.collector = collector
        self.schedule = schedule
        self.clock = context.loop.clock
        self.request_ids = itertools.count(1)
        self.pending: Optional[Tuple[int, Built]] = None  # (request id, report) at the link
        self.unanswered: Optional[int] = None  # the last report sent, until its reply
        self.timer = None

    def handlers(self):
        """The defender's dispatch table: each message kind it receives -> its handler."""
        return {LinkState: self.on_link_state, Published: self.on_published,
                PublishFailed: self.on_publish_failed, DefenderReply: self.on_reply}

    # -- the timer ---------------------------------------------------------------------
    def arm(self) -> None:
        """Set the one timer to when the schedule says the next report is due."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        timeout = self.schedule.timeout(self.clock())
        if timeout is not None:
            self.timer = self.loop.call_later(timeout, self.due)

    def due(self) -> None:
        self.timer = None
        now = self.clock()
        if self.schedule.is_due(now):
            self.send(now)
        self.arm()

    # -- a report ----------------------------------------------------------------------
    def send(self, now: float) -> None:
        try:
            built = self.collector.build()
        except (OSError, OverflowError, ValueError) as error:
            # An id that cannot be saved is never used: this report is skipped, and the
            # next comes an interval later, as if it had been sent.
            reason = getattr(error, "strerror", None) or str(error)
            log.error("report skipped: cannot take the next report id: %s", reason)
            self.schedule.sent(now)
            return
        for note in built.notes:
            log.warning("%s", note)
        request_id = next(self.request_ids)
        self.pending = (request_id, built)
        self.unanswered = built.report_id
        self.mailbox.send(LINK, Publish(ids=[request_id], topics=[self.topic],
                                        payloads=[built.payload], qos=[1], window=1))
        self.schedule.sent(now)

    def on_published(self, sender: str, message: Published) -> None:
        if self.pending is None or self.pending[0] not in message.ids:
            return
        built = self.pending[1]
        self.pending = None
        self.collector.delivered(built)
        log.info("report %d published (%d bytes)", built.report_id, len(built.payload))

    def on_publish_failed(self, sender: str, message: PublishFailed) -> None:
        if self.pending is None or self.pending[0] != message.id:
            return
        built = self.pending[1]
        self.pending = None
        log.warning("report %d not published: %s; the next report replaces it",
                    built.report_id, message.reason)

    def on_link_state(self, sender: str, message: LinkState) -> None:
        if not message.up and self.pending is not None:
            log.info("report %d not acknowledged before the link went down; the next "
                     "report replaces it", self.pending[1].report_id)
            self.pending = None
        self.schedule.link_changed(message.up, self.clock())
        self.arm()

    def on_reply(self, sender: str, reply: DefenderReply) -> None:
        """The answer to the last report sent is logged, once (a rejection with its
        code); any other (a duplicate, an old or made-up id) is a debug line only, so a
        flood of replies cannot flood the log."""
        if self.unanswered is None or reply.report_id not in (None, self.unanswered):
            log.debug("ignored a Device Defender reply for report %s: not the report "
                      "awaiting an answer", reply.report_id)
            return
        report_id, self.unanswered = self.unanswered, None
        if reply.accepted:
            log.info("report %d accepted by Device Defender", report_id)
        else:
            log.warning("report %d rejected by Device Defender: %s: %s", report_id,
                        reply.code or "no code", reply.message or "no message")

def run(context: RoleContext) -> int:
    options: DefenderConfig = context.role.options
    first, interval, minimum = timing_from_environment(os.environ, options.interval)
    schedule = (ReportSchedule(interval, first) if minimum is None
                else ReportSchedule(interval, first, minimum=minimum))
    path = state_path(context.config.certstore, options.thing)
    remove_stale_temps(path)  # a temp name a kill mid-write left
    collector = Collector(ReportIds(path), options.custom_dir, options.short_names)
    defender = Defender(context, collector, schedule)
    handlers = defender.handlers()
    context.loop.add_reader(context.mailbox.socket,
                            lambda: context.mailbox.dispatch(handlers))
    return context.loop.run()
