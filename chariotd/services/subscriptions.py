"""--subscribe-write and --subscribe-exec: what the applier does with each message the
link forwards, without ever blocking its loop.

- write: PATH (which must exist, never created here) is a FIFO, or a regular file with
  one link; it is opened the one safe way (chariotd/kernel/safe_open.py: no symlink followed,
  O_NONBLOCK, the type checked on the opened file), a regular file then truncated, the
  payload written, the file closed. Anything else there (a symlink, a hard link, a
  device, a directory) is never opened for writing, let alone truncated: the message is
  dropped with an error. A FIFO with no reader (ENXIO) loses the message with a
  warning; any other error is logged and the message dropped. A reader slower than the pipe buffer is waited for by the loop, at
  most WRITE_TIMEOUT seconds, then the rest of that message is dropped.
- exec: PATH runs with the payload on stdin and MESSAGE_TOPIC in its environment, at most
  EXEC_TIMEOUT seconds (then its process group is killed). A topic that cannot reach a
  child's environment (a NUL) is refused by the spawner: the message is dropped with a
  log line and the next one runs.

Each subscription handles one message at a time; the next ones wait in a queue of at most
QUEUE_LIMIT messages. A message arriving at a full queue is dropped (the queued ones keep
their order) with one warning per overflow, and a count once there is room again.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import stat
from typing import Deque, List, Optional, Tuple

from chariotd.kernel import safe_open
from chariotd.kernel.loop import Loop
from chariotd.kernel.spawn import shown
from chariotd.kernel.spawn import Result, Spawner
from chariotd.kernel.topics import matches

log = logging.getLogger(__name__)

QUEUE_LIMIT = 100
EXEC_TIMEOUT = 5.0
WRITE_TIMEOUT = 5.0


class _Subscription:
    """One TOPIC_FILTER:PATH with its queue; subclasses say how a message is handled."""
    kind = ""

    def __init__(self, topic_filter: str, path: str, loop: Loop):
        self.topic_filter = topic_filter
        self.path = path
        self.loop = loop
        self.queue: Deque[Tuple[str, bytes]] = collections.deque()
        self.busy = False
        self.dropped = 0

    def __str__(self) -> str:
        return f"subscription {self.topic_filter} -> {self.kind} {self.path}"

    def deliver(self, topic: str, payload: bytes) -> None:
        if len(self.queue) >= QUEUE_LIMIT:
            if not self.dropped:
                log.warning("%s: %d messages waiting; dropping new ones until there is "
                            "room", self, QUEUE_LIMIT)
            self.dropped += 1
            return
        self.queue.append((topic, payload))
        self._pump()

    def _pump(self) -> None:
        while not self.busy and self.queue:
            topic, payload = self.queue.popleft()
            if self.dropped:
                log.warning("%s: %d messages were dropped", self, self.dropped)
                self.dropped = 0
            self.busy = True
            self.handle(topic, payload)

    def finished(self) -> None:
        """The current message is done; the next one starts on the next loop pass (so a
        chain of quick failures never recurses)."""
        self.busy = False
        if self.queue:
            self.loop.call_later(0, self._pump)

    def handle(self, topic: str, payload: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class WriteSubscription(_Subscription):
    kind = "write"

    def __init__(self, topic_filter: str, path: str, loop: Loop):
        super().__init__(topic_filter, path, loop)
        self.fd: Optional[int] = None
        self.topic = ""
        self.rest = memoryview(b"")
        self.timer = None

    def handle(self, topic: str, payload: bytes) -> None:
        try:
            self.fd = self._open()
        except OSError as error:
            if error.errno == errno.ENXIO:
                log.warning("%s: no reader on %s; the message on %s is lost", self,
                            self.path, topic)
            else:
                log.error("%s: cannot open %s: %s; the message on %s is dropped", self,
                          self.path, error.strerror, topic)
            self.finished()
            return
        self.topic, self.rest = topic, memoryview(payload)
        self._write()

    def _open(self) -> int:
        fd, st = safe_open.open_checked(self.path, os.O_WRONLY, safe_open.FIFO_OR_REGULAR,
                                        single_link=True)
        if stat.S_ISREG(st.st_mode):
            try:
                os.ftruncate(fd, 0)
            except OSError:
                os.close(fd)
                raise
        return fd

    def _write(self) -> None:
        try:
            written = os.write(self.fd, self.rest) if self.rest else 0
        except BlockingIOError:
            written = 0
        except OSError as error:
            log.error("%s: cannot write to %s: %s; the message on %s is dropped", self,
                      self.path, error.strerror, self.topic)
            self._done()
            return
        self.rest = self.rest[written:]
        if not self.rest:
            log.debug("%s: wrote a message on %s", self, self.topic)
            self._done()
        elif self.timer is None:  # the reader is slower than the pipe: wait for it
            self.loop.set_writer(self.fd, self._write)
            self.timer = self.loop.call_later(WRITE_TIMEOUT, self._stalled)

    def _stalled(self) -> None:
        self.timer = None
        log.warning("%s: %s took no more of the message on %s for %d s; %d bytes dropped",
                    self, self.path, self.topic, WRITE_TIMEOUT, len(self.rest))
        self._done()

    def _done(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.close()
        self.finished()

    def close(self) -> None:
        if self.fd is not None:
            self.loop.forget(self.fd)
            os.close(self.fd)
            self.fd = None
        self.rest = memoryview(b"")


class ExecSubscription(_Subscription):
    kind = "exec"

    def __init__(self, topic_filter: str, path: str, loop: Loop, spawner: Spawner):
        super().__init__(topic_filter, path, loop)
        self.spawner = spawner

    def handle(self, topic: str, payload: bytes) -> None:
        def done(result: Result) -> None:
            if result.refused is not None:  # what it says holds the topic, escaped
                log.error("%s: a message was dropped: its handler %s", self,
                          result.describe())
            elif not result.ok:
                log.error("%s: the handler for a message on %s %s%s", self, topic,
                          result.describe(),
                          f": {shown(result.stderr)}" if result.stderr.strip() else "")
            elif result.stderr.strip():
                log.warning("%s: the handler said: %s", self, shown(result.stderr))
            else:
                log.debug("%s: handled a message on %s", self, topic)
            self.finished()

        self.spawner.run([self.path], done, timeout=EXEC_TIMEOUT, stdin=payload,
                         env={"MESSAGE_TOPIC": topic})


class Subscriptions:
    def __init__(self, write: List[Tuple[str, str]], execute: List[Tuple[str, str]],
                 loop: Loop, spawner: Spawner):
        self.all: List[_Subscription] = (
            [WriteSubscription(f, path, loop) for f, path in write]
            + [ExecSubscription(f, path, loop, spawner) for f, path in execute])

    def deliver(self, topic: str, payload: bytes) -> bool:
        """Hand the message to every subscription whose filter matches; False if none."""
        matched = [s for s in self.all if matches(s.topic_filter, topic)]
        for subscription in matched:
            subscription.deliver(topic, payload)
        return bool(matched)

    def close(self) -> None:
        for subscription in self.all:
            subscription.close()
