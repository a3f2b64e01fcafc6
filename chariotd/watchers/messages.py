"""The messages handler: publishes the files of one --messages directory through the
link, at most `concurrency` unacknowledged at once, and removes each file only after
its acknowledgement.

Failures: a file that cannot be parsed goes to failed/ at once. A publish the link
refuses counts as a failed attempt; after `retries` extra attempts the file goes to
failed/. When the connection drops, everything in flight is sent again after the
reconnect, and the attempt counts only for a message that was alone in flight: after
a drop with several in flight, those suspects are resent one at a time, so a message
that makes the broker drop the connection every time is isolated, charged, and
finally moved to failed/ while the rest flow (it never jams the queue).

Jam detection: the window full with no acknowledgement for `jam_timeout` seconds
ends the process with status 1 (the supervisor restarts the tree).
"""

from __future__ import annotations

import itertools
import logging
from typing import Dict, Set

from chariotd.cli import MessageDir
from chariotd.ipc.messages import LinkState, Publish, Published, PublishFailed
from chariotd.runtime import LINK, RoleContext
from chariotd.watchers.actiondir import ActionDir
from chariotd.watchers.message_file import MAX_PAYLOAD, BadMessage, parse_message
from chariotd.watchers.queue import Backlog

log = logging.getLogger(__name__)

# A message file is JSON around a payload of at most 128 KB; read no more than this.
MAX_FILE = 4 * MAX_PAYLOAD + 65536


# A connection that drops within this many seconds of a publish, with that message
# alone in flight, counts as a failed attempt of that message. A broker refusing a
# packet drops at once; a dead network is noticed only after keep-alive timeouts.
POISON_WINDOW = 5.0


class InFlight:
    __slots__ = ("name", "identity", "sent_at")

    def __init__(self, name: str, identity, sent_at: float):
        self.name = name
        self.identity = identity
        self.sent_at = sent_at


class MessagesHandler:
    def __init__(self, context: RoleContext, options: MessageDir, actiondir: ActionDir):
        self.loop = context.loop
        self.mailbox = context.mailbox
        self.options = options
        self.actiondir = actiondir
        self.backlog = Backlog()
        self.inflight: Dict[int, InFlight] = {}
        self.inflight_names: Set[str] = set()
        self.attempts: Dict[str, int] = {}
        self.suspects: Set[str] = set()
        self.link_up = False
        self.ids = itertools.count(1)
        self.jam_timer = None

    # -- arrivals ---------------------------------------------------------------------
    def arrived(self, name: str) -> None:
        if name in self.inflight_names:
            return  # replaced while in flight: noticed when it is acknowledged
        if self.backlog.add(name):
            self.pump()

    def rescan(self) -> None:
        for name in self.actiondir.scan():
            self.arrived(name)

    def on_inotify(self) -> None:
        for name in self.actiondir.arrivals(self.rescan):
            self.arrived(name)

    # -- sending ------------------------------------------------------------------------
    @property
    def window(self) -> int:
        return 1 if self.suspects else self.options.concurrency

    def pump(self) -> None:
        while self.link_up and len(self.inflight) < self.window:
            name = self._next_name()
            if name is None:
                break
            self._send(name)
        self._watch_jam()

    def _next_name(self):
        for name in sorted(self.suspects):
            if name in self.backlog:
                self.backlog.discard(name)
                return name
        return self.backlog.pop()

    def _send(self, name: str) -> None:
        try:
            data, identity = self.actiondir.read(name, MAX_FILE)
        except FileNotFoundError:
            self._forget(name)
            return
        except (OSError, ValueError) as error:
            self._give_up(name, f"cannot read: {error}")
            return
        try:
            message = parse_message(data)
        except BadMessage as error:
            self._give_up(name, str(error))
            return
        request_id = next(self.ids)
        self.inflight[request_id] = InFlight(name, identity, self.loop.clock())
        self.inflight_names.add(name)
        self.mailbox.send(LINK, Publish(id=request_id, topic=message.topic,
                                        payload=message.payload, qos=message.qos))

    # -- outcomes -----------------------------------------------------------------------
    def on_published(self, sender: str, reply: Published) -> None:
        entry = self._land(reply.id)
        if entry is None:
            return
        replaced = self.actiondir.identity(entry.name) not in (entry.identity, None)
        if not replaced:
            self.actiondir.remove(entry.name)
        self._forget(entry.name)
        if replaced:
            self.arrived(entry.name)  # a new file took the name meanwhile: send it too
        self.pump()

    def on_publish_failed(self, sender: str, reply: PublishFailed) -> None:
        entry = self._land(reply.id)
        if entry is None:
            return
        self._retry(entry.name, reply.reason, charge=reply.charge)
        self.pump()

    def on_link_state(self, sender: str, state: LinkState) -> None:
        if state.up == self.link_up:
            return
        self.link_up = state.up
        if not state.up and self.inflight:
            entries = list(self.inflight.values())
            lost = [entry.name for entry in entries]
            for request_id in list(self.inflight):
                self._land(request_id)
            if len(lost) == 1:
                recent = self.loop.clock() - entries[0].sent_at < POISON_WINDOW
                self._retry(lost[0], "the connection dropped while it was in flight",
                            charge=recent)
            else:
                self.suspects.update(lost)
                for name in lost:
                    self.backlog.add(name)
        self.pump()

    def _land(self, request_id: int):
        entry = self.inflight.pop(request_id, None)
        if entry is not None:
            self.inflight_names.discard(entry.name)
            if self.jam_timer is not None:
                self.jam_timer.cancel()
                self.jam_timer = None
        return entry

    def _retry(self, name: str, reason: str, charge: bool) -> None:
        if charge:
            attempts = self.attempts.get(name, 0) + 1
            self.attempts[name] = attempts
            if attempts > self.options.retries:
                self._give_up(name, f"{reason} (after {attempts} attempts)")
                return
            log.info("%s: %s; will retry", name, reason)
        self.backlog.add(name)

    def _give_up(self, name: str, reason: str) -> None:
        self.actiondir.fail(name, reason)
        self._forget(name)

    def _forget(self, name: str) -> None:
        self.attempts.pop(name, None)
        self.suspects.discard(name)
        self.backlog.discard(name)

    # -- jam detection --------------------------------------------------------------------
    def _watch_jam(self) -> None:
        full = self.link_up and len(self.inflight) >= self.window
        if full and self.jam_timer is None:
            self.jam_timer = self.loop.call_later(self.options.jam_timeout, self._jammed)
        elif not full and self.jam_timer is not None:
            self.jam_timer.cancel()
            self.jam_timer = None

    def _jammed(self) -> None:
        log.error("queue jammed: %d messages unacknowledged for %g s; exiting",
                  len(self.inflight), self.options.jam_timeout)
        self.loop.stop(1)
