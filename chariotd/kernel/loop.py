"""The one poll loop every process runs: a zmq.Poller over sockets and file
descriptors, one-shot timers, and signals delivered through a wake-up pipe.

Signal handlers never act: Python's wake-up fd writes the signal number into a
pipe that the loop watches, and the loop calls the role's handler for it.
"""

from __future__ import annotations

import heapq
import itertools
import os
import signal
import time
from typing import Callable, Dict, List, Optional, Tuple

import zmq

Callback = Callable[[], None]


class Timer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callback):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._poller = zmq.Poller()
        self._readers: Dict[object, Callback] = {}
        self._writers: Dict[object, Callback] = {}
        self._timers: List[Tuple[float, int, Timer]] = []
        self._sequence = itertools.count()
        self._after_each: List[Callback] = []
        self._signal_handlers: Dict[int, Callback] = {}
        self._signal_pipe: Optional[int] = None
        self._status: Optional[int] = None

    # -- file descriptors and sockets -------------------------------------------------
    def _update(self, key) -> None:
        flags = (zmq.POLLIN if key in self._readers else 0) | (
            zmq.POLLOUT if key in self._writers else 0)
        if flags:
            self._poller.register(key, flags)
        else:
            try:
                self._poller.unregister(key)
            except KeyError:
                pass

    def add_reader(self, key, callback: Callback) -> None:
        """KEY is a zmq socket or an int file descriptor."""
        self._readers[key] = callback
        self._update(key)

    def remove_reader(self, key) -> None:
        self._readers.pop(key, None)
        self._update(key)

    def set_writer(self, key, callback: Optional[Callback]) -> None:
        """Call CALLBACK while KEY is writable; None stops asking."""
        if callback is None:
            if self._writers.pop(key, None) is None:
                return
        else:
            if self._writers.get(key) is callback:
                return
            self._writers[key] = callback
        self._update(key)

    def forget(self, key) -> None:
        self._readers.pop(key, None)
        self._writers.pop(key, None)
        self._update(key)

    # -- time -------------------------------------------------------------------------
    def call_later(self, delay: float, callback: Callback) -> Timer:
        timer = Timer(self.clock() + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._sequence), timer))
        return timer

    def after_each(self, callback: Callback) -> None:
        """Run CALLBACK after every pass of the loop (e.g. to flush what a pass queued)."""
        self._after_each.append(callback)

    # -- signals ----------------------------------------------------------------------
    def on_signal(self, signum: int, callback: Callback) -> None:
        if self._signal_pipe is None:
            read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
            self._signal_pipe = read_end
            self.add_reader(read_end, self._read_signals)
        self._signal_handlers[signum] = callback
        signal.signal(signum, lambda *_: None)

    def _read_signals(self) -> None:
        try:
            data = os.read(self._signal_pipe, 256)
        except BlockingIOError:
            return
        for signum in data:
            handler = self._signal_handlers.get(signum)
            if handler is not None:
                handler()

    # -- running ----------------------------------------------------------------------
    def stop(self, status: int = 0) -> None:
        if self._status is None:
            self._status = status

    @property
    def stopping(self) -> bool:
        return self._status is not None

    def _next_timeout_ms(self) -> Optional[int]:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            return None
        return max(0, int((self._timers[0][0] - self.clock()) * 1000) + 1)

    def _run_timers(self) -> None:
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)[2]
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()
            if self._status is not None:
                return

    def run(self) -> int:
        while self._status is None:
            for key, events in self._poller.poll(self._next_timeout_ms()):
                # An error or hang-up is reported to the reader, whose read sees it.
                if events & (zmq.POLLIN | zmq.POLLERR) and key in self._readers:
                    self._readers[key]()
                if events & zmq.POLLOUT and key in self._writers:
                    self._writers[key]()
                if self._status is not None:
                    break
            if self._status is None:
                self._run_timers()
            for callback in self._after_each:
                callback()
        return self._status
