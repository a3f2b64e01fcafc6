"""The messages handler: publishes the files of one --messages directory through the
link, at most `concurrency` unacknowledged at once, and removes each file only after
its acknowledgement.

Backlog: every file is read once when it arrives (or is found by the scan at start)
to learn its mtime and priority fields; only those and its name are kept (an `Entry`
in the pure `queue.Backlog`), never its content. The scan at start reads the files a
slice of time per loop pass, so the loop keeps answering, and nothing is published
until it is done: a prioritised file found last still goes first. Right before it is
published a file is read again, merged on top of its letterhead (read from
`letterhead-file`, or the output of `letterhead-generator`, one run at a time, watched
by the loop), given the directory's topic prefix and suffix, and compressed when it
asks to be.

Failures: a file that cannot be parsed goes to failed/ at once. A publish the link
refuses, or a letterhead that cannot be had, counts as a failed attempt; after
`retries` extra attempts the file goes to failed/. When the connection drops,
everything in flight is sent again after the reconnect, and the attempt counts only
for a message that was alone in flight: after a drop with several in flight, those
suspects are resent one at a time, so a message that makes the broker drop the
connection every time is isolated, charged, and finally moved to failed/ while the
rest flow (it never jams the queue).

Jam detection: the window full with no acknowledgement for `jam_timeout` seconds
ends the process with status 1 (the supervisor restarts the tree).
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Dict, List, Optional, Set, Tuple

from chariotd.config import MessageDir
from chariotd.kernel import safe_open
from chariotd.kernel.backoff import Backoff, ceiling
from chariotd.ipc.messages import LinkState, Publish, Published, PublishFailed
from chariotd.kernel.runtime import LINK, RoleContext
from chariotd.watchers.actiondir import ActionDir
from chariotd.watchers.letterhead import (
    BadLetterhead, generator_environment, merge, parse_letterhead)
from chariotd.watchers.message_file import (
    MAX_PAYLOAD, BadMessage, build_message, full_topic, peek_priority, priority_fields,
    read_document)
from chariotd.watchers.queue import Backlog, Entry

if TYPE_CHECKING:
    from chariotd.kernel.spawn import Result

log = logging.getLogger(__name__)

# A message file is JSON around a payload of at most 128 KB; read no more than this.
# A letterhead (file or generator output) is held to the same bound.
MAX_FILE = 4 * MAX_PAYLOAD + 65536

# A connection that drops within this many seconds of a publish, with that message
# alone in flight, counts as a failed attempt of that message. A broker refusing a
# packet drops at once; a dead network is noticed only after keep-alive timeouts.
POISON_WINDOW = 5.0

LETTERHEAD_TIME_LIMIT = 5.0  # seconds a letterhead generator may run (EXTENSIONS A)
# After a letterhead could not be had, the directory pauses for the backoff's ceiling
# (kernel/backoff.py), from its 1 s minimum interval up to CAP seconds, so a broken
# letterhead does not run the backlog through failed/ at once. The ceiling, not a
# jittered draw: a draw near 0 would be no pause at all.
LETTERHEAD_PAUSE_CAP = 300.0

# Messages handed to the link at once, in windows (see `handed`).
HANDED = 3

# The scan at start reads files for this long per loop pass, then lets the loop run.
SCAN_SLICE = 0.02


class InFlight:
    __slots__ = ("entry", "identity", "sent_at")

    def __init__(self, entry: Entry, identity, sent_at: float):
        self.entry = entry
        self.identity = identity
        self.sent_at = sent_at


class Outgoing:
    """A message read for publishing, waiting for its letterhead."""
    __slots__ = ("entry", "identity", "document", "topic")

    def __init__(self, entry: Entry, identity, document: dict, topic: str):
        self.entry = entry
        self.identity = identity
        self.document = document
        self.topic = topic


class MessagesHandler:
    def __init__(self, context: RoleContext, options: MessageDir, actiondir: ActionDir,
                 backoff: Backoff = Backoff()):
        self.loop = context.loop
        self.backoff = backoff
        self.mailbox = context.mailbox
        self.options = options
        self.actiondir = actiondir
        self.backlog = Backlog(options.order)
        self.unscanned: List[str] = []     # found by a scan, not read yet (reversed)
        self.scan_timer = None
        self.inflight: Dict[int, InFlight] = {}
        self.outbox: List[Tuple[int, object]] = []  # released this pass, not yet sent
        self.inflight_names: Set[str] = set()
        # Files that just arrived, as read to learn their priority: the ones published
        # in the same loop pass are not read a second time (at most `handed` of them).
        self.fresh: Dict[str, Tuple[bytes, object]] = {}
        self.spawner = None
        if options.letterhead_generator:  # the only user of subprocess in this role
            from chariotd.kernel.spawn import Spawner
            self.spawner = Spawner(self.loop)
        self.generating_name: Optional[str] = None
        self.letterhead_file: Optional[Tuple[bytes, dict]] = None  # last bytes, parsed
        self.letterhead_failures = 0  # in a row
        self.letterhead_pause = None  # timer while publishing pauses after one failed
        self.attempts: Dict[str, int] = {}
        self.suspects: Set[str] = set()
        self.link_up = False
        self.ids = itertools.count(1)
        self.jam_timer = None

    # -- arrivals ---------------------------------------------------------------------
    def _learn(self, name: str, keep: bool = False) -> bool:
        """Read new/NAME to queue it by its mtime and priority fields; True if queued.
        KEEP: hold on to what was read until the end of this pass (`fresh`)."""
        if name in self.inflight_names or name == self.generating_name:
            return False  # replaced while being published: noticed when acknowledged
        try:
            data, identity = self.actiondir.read(name, MAX_FILE)
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as error:
            self._give_up(name, f"cannot read: {error}")
            return False
        if keep:
            self.fresh[name] = (data, identity)
        priority, slot = peek_priority(data)
        self.backlog.add(Entry(name, identity[1], priority, slot))
        return True

    def rescan(self) -> None:
        """Queue every file waiting in new/ (at start, and after an inotify overflow);
        nothing is published until all of them are read."""
        self.unscanned = self.actiondir.scan()
        self.unscanned.reverse()
        if self.scan_timer is None:
            self._scan_some()

    def _scan_some(self) -> None:
        self.scan_timer = None
        deadline = self.loop.clock() + SCAN_SLICE
        while self.unscanned:
            for _ in range(min(64, len(self.unscanned))):
                self._learn(self.unscanned.pop())
            if self.loop.clock() >= deadline:
                break
        if self.unscanned:
            self.scan_timer = self.loop.call_later(0, self._scan_some)
        else:
            self.pump()

    def on_inotify(self) -> None:
        # Learn every name of the batch before sending any: a prioritised file that
        # arrived with others goes first.
        room = self.handed - len(self.inflight) if self.link_up else 0
        learned = [self._learn(name, keep=index < room)
                   for index, name in enumerate(self.actiondir.arrivals(self.rescan))]
        if any(learned):
            self.pump()
        self.fresh.clear()

    # -- sending ------------------------------------------------------------------------
    @property
    def window(self) -> int:
        return 1 if self.suspects else self.options.concurrency

    @property
    def handed(self) -> int:
        """Messages handed to the link at once: the window, plus two windows more
        waiting at the link for a slot (it publishes the next as soon as an
        acknowledgement frees one, and tells acknowledgements in batches while more
        than a window waits), except while a suspect is isolated."""
        return 1 if self.suspects else HANDED * self.options.concurrency

    def pump(self) -> None:
        while (self.link_up and not self.unscanned and self.generating_name is None
               and self.letterhead_pause is None and len(self.inflight) < self.handed):
            entry = self._next_entry()
            if entry is None:
                break
            self._send(entry)
        self._flush_outbox()
        self._watch_jam()

    def _flush_outbox(self) -> None:
        """One frame to the link for everything this pass released."""
        if self.outbox:
            outbox, self.outbox = self.outbox, []
            self.mailbox.send(LINK, Publish(
                ids=[request_id for request_id, _ in outbox],
                topics=[message.topic for _, message in outbox],
                payloads=[message.payload for _, message in outbox],
                qos=[message.qos for _, message in outbox],
                window=self.window))

    def _next_entry(self) -> Optional[Entry]:
        for name in sorted(self.suspects):
            if name in self.backlog:
                return self.backlog.take(name)
        return self.backlog.pop()

    def _send(self, entry: Entry) -> None:
        name = entry.name
        try:
            data, identity = self.fresh.pop(name, None) or self.actiondir.read(name, MAX_FILE)
        except FileNotFoundError:
            self._forget(name)
            return
        except (OSError, ValueError) as error:
            self._give_up(name, f"cannot read: {error}")
            return
        try:
            document = read_document(data)
            topic = full_topic(document, self.options.topic_prefix, self.options.topic_suffix,
                               self.options.reserved_topics)
        except BadMessage as error:
            self._give_up(name, str(error))
            return
        outgoing = Outgoing(entry, identity, document, topic)
        if self.options.letterhead_generator:
            self._generate_letterhead(outgoing)
        elif self.options.letterhead_file:
            self._read_letterhead(outgoing)
        else:
            self._publish(outgoing, None)

    def _read_letterhead(self, outgoing: Outgoing) -> None:
        path = self.options.letterhead_file
        try:
            # Its writer may be an unprivileged program: no link followed, no FIFO
            # waited on (a FIFO there would hang this watcher).
            data, _ = safe_open.read_file(path, MAX_FILE)
            if self.letterhead_file is None or data != self.letterhead_file[0]:
                # parsed again only when its bytes changed
                self.letterhead_file = (data, parse_letterhead(data))
            letterhead = self.letterhead_file[1]
        except OSError as error:
            self._letterhead_failed(outgoing.entry,
                                    f"letterhead file {path}: {error.strerror or error}")
            return
        except BadLetterhead as error:
            self._letterhead_failed(outgoing.entry, f"letterhead file {path}: {error}")
            return
        self.letterhead_failures = 0
        self._publish(outgoing, letterhead)

    def _generate_letterhead(self, outgoing: Outgoing) -> None:
        entry = outgoing.entry
        priority, slot = priority_fields(outgoing.document)
        try:
            env = generator_environment(
                topic=outgoing.topic, path=self.actiondir.path_of(entry.name),
                mtime_ns=outgoing.identity[1], priority=priority, slot=slot,
                was_prioritised=entry.prioritised)
        except BadMessage as error:
            self._give_up(entry.name, str(error))
            return
        self.generating_name = entry.name  # one generator at a time
        self.spawner.run([self.options.letterhead_generator],
                         lambda result: self._generated(outgoing, result),
                         timeout=LETTERHEAD_TIME_LIMIT, capture_stdout=True, env=env)

    def _generated(self, outgoing: Outgoing, result: Result) -> None:
        self.generating_name = None
        program = self.options.letterhead_generator
        letterhead = failure = None
        if result.stderr.strip():
            from chariotd.kernel.spawn import shown
            log.warning("letterhead generator said: %s", shown(result.stderr))
        if result.refused is not None:  # the message holds what no child can be given
            self._give_up(outgoing.entry.name, f"letterhead generator {result.describe()}")
            self.pump()
            return
        if not result.ok:
            failure = f"{program} {result.describe()}"
        elif result.truncated or len(result.stdout) > MAX_FILE:
            failure = f"{program} wrote more than {MAX_FILE} bytes"
        else:
            try:
                letterhead = parse_letterhead(result.stdout)
            except BadLetterhead as error:
                failure = f"its output: {error}"
        if failure is not None:
            self._letterhead_failed(outgoing.entry, f"letterhead generator: {failure}")
        elif not self.link_up:
            self.backlog.add(outgoing.entry)  # published after the reconnect
        else:
            self.letterhead_failures = 0
            self._publish(outgoing, letterhead)
        self.pump()

    def _letterhead_failed(self, entry: Entry, reason: str) -> None:
        """A letterhead that cannot be had is a failed attempt of the message being sent
        (EXTENSIONS A); then the directory pauses, longer after each failure in a row."""
        self._retry(entry, reason, charge=True)
        pause = ceiling(self.letterhead_failures, self.backoff.min_interval,
                        LETTERHEAD_PAUSE_CAP)
        self.letterhead_failures += 1
        log.warning("publishing paused for %g s after a letterhead failure", pause)

        def resume() -> None:
            self.letterhead_pause = None
            self.pump()

        self.letterhead_pause = self.loop.call_later(pause, resume)

    def _publish(self, outgoing: Outgoing, letterhead: Optional[dict]) -> None:
        name = outgoing.entry.name
        document = outgoing.document if letterhead is None else merge(
            letterhead, outgoing.document)
        try:
            message = build_message(document, outgoing.topic)
        except BadMessage as error:
            self._give_up(name, str(error))
            return
        if message.warning:
            log.warning("%s: %s", name, message.warning)
        request_id = next(self.ids)
        self.inflight[request_id] = InFlight(outgoing.entry, outgoing.identity,
                                             self.loop.clock())
        self.inflight_names.add(name)
        self.outbox.append((request_id, message))  # sent together at the end of pump()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: publishing to %s, QoS %d (request %d)", name, message.topic,
                      message.qos, request_id)

    # -- outcomes -----------------------------------------------------------------------
    def handlers(self):
        """The messages watcher's dispatch table: message kind -> handler."""
        return {LinkState: self.on_link_state, Published: self.on_published,
                PublishFailed: self.on_publish_failed}

    def on_published(self, sender: str, reply: Published) -> None:
        debug = log.isEnabledFor(logging.DEBUG)
        for request_id in reply.ids:
            landed = self._land(request_id)
            if landed is None:
                continue
            name = landed.entry.name
            if debug:
                log.debug("%s: acknowledged (request %d)", name, request_id)
            replaced = self.actiondir.identity(name) not in (landed.identity, None)
            if not replaced:
                self.actiondir.remove(name)
            self._forget(name)
            if replaced:
                self._learn(name)  # a new file took the name meanwhile: send it too
        self.pump()

    def on_publish_failed(self, sender: str, reply: PublishFailed) -> None:
        landed = self._land(reply.id)
        if landed is None:
            return
        self._retry(landed.entry, reply.reason, charge=reply.charge)
        self.pump()

    def on_link_state(self, sender: str, state: LinkState) -> None:
        if state.up == self.link_up:
            return
        self.link_up = state.up
        if not state.up and self.inflight:
            landed = [self._land(request_id) for request_id in list(self.inflight)]
            if len(landed) == 1:
                recent = self.loop.clock() - landed[0].sent_at < POISON_WINDOW
                self._retry(landed[0].entry, "the connection dropped while it was in flight",
                            charge=recent)
            else:
                for flight in landed:
                    self.suspects.add(flight.entry.name)
                    self.backlog.add(flight.entry)
        self.pump()

    def _land(self, request_id: int) -> Optional[InFlight]:
        flight = self.inflight.pop(request_id, None)
        if flight is not None:
            self.inflight_names.discard(flight.entry.name)
            if self.jam_timer is not None:
                self.jam_timer.cancel()
                self.jam_timer = None
        return flight

    def _retry(self, entry: Entry, reason: str, charge: bool) -> None:
        if charge:
            attempts = self.attempts.get(entry.name, 0) + 1
            self.attempts[entry.name] = attempts
            if attempts > self.options.retries:
                self._give_up(entry.name, f"{reason} (after {attempts} attempts)")
                return
            log.info("%s: %s; will retry", entry.name, reason)
        self.backlog.add(entry)

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

    def close(self) -> None:
        if self.spawner is not None:
            self.spawner.kill_all()
