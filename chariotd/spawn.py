"""Run commands without ever blocking the poll loop: notify commands, the default
shadow command, subscription handlers.

Each command runs in its own session (so a timeout kills its whole process group),
with `/` as working directory and an environment without the daemon's secrets. Its
output pipes are read by the loop as data arrives; its exit is noticed on SIGCHLD,
and then `on_done(Result)` is called with what it wrote (a daemon it started that
still holds the pipes is not waited for).

At most MAX_CHILDREN commands of a role run at once; further starts wait in a FIFO
queue and start as running ones finish, each with its full timeout from when it
actually starts. The queue stays small because every caller has at most one command
waiting (notify commands are coalesced per service, a subscription handles one message
at a time, one letterhead generator, one default shadow command per shadow).
"""

from __future__ import annotations

import logging
import os
import signal
import collections
import subprocess
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Optional, Tuple

from chariotd.loop import Loop

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 1 << 20  # bytes kept of a command's stdout or stderr

# Commands of one role running at once. Each holds up to three pipes in the role (48
# fds, far from the usual 1024) and a shell's few hundred KB; a device's services are
# fewer, and on a 2-core device more would only make each one slower.
MAX_CHILDREN = 16

# Never handed to a child: supervisor sockets and anything named like a secret.
_DROPPED_PREFIXES = ("NOTIFY_SOCKET", "WATCHDOG_", "LISTEN_", "JOURNAL_STREAM",
                     "CHARIOTD_", "AWS_")
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE")


def child_environment(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(_DROPPED_PREFIXES)
           and not any(word in name.upper() for word in _SECRET_WORDS)}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(extra or {})
    return env


SHOWN = 500  # characters of a command's complaint that make it into a log line


def shown(data: bytes) -> str:
    """A command's output as one loggable piece of text, cut at SHOWN characters."""
    text = data.decode("utf-8", errors="replace").strip()
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


@dataclass
class Result:
    status: Optional[int]  # exit status, or -N when killed by signal N
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    truncated: bool = False  # wrote more than OUTPUT_LIMIT on stdout or stderr

    @property
    def ok(self) -> bool:
        return self.status == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            return "timed out and was killed"
        if self.status is not None and self.status < 0:
            return f"was killed by signal {-self.status}"
        return f"exited with status {self.status}"


class _Child:
    def __init__(self, process: subprocess.Popen, on_done, stdin: bytes):
        self.process = process
        self.on_done = on_done
        self.output: Dict[int, List[bytes]] = {}
        self.sizes: Dict[int, int] = {}
        self.open_fds: List[int] = []
        self.stdin = memoryview(stdin)
        self.timed_out = False
        self.timer = None
        self.status: Optional[int] = None


class Spawner:
    """Owns SIGCHLD in its process: every command is started through it."""

    def __init__(self, loop: Loop, max_children: int = MAX_CHILDREN):
        self.loop = loop
        self.max_children = max_children
        self.children: Dict[int, _Child] = {}
        self.waiting: Deque[Tuple[tuple, dict]] = collections.deque()
        loop.on_signal(signal.SIGCHLD, self.reap)

    def run(self, argv: List[str], on_done: Callable[[Result], None], timeout: float,
            stdin: bytes = b"", capture_stdout: bool = False,
            env: Optional[Dict[str, str]] = None, inherit_env: bool = True) -> Optional[int]:
        """Start ARGV, or queue it while MAX_CHILDREN run; returns its pid, or None when
        it is queued or cannot be started (on_done is then called from the loop, never
        from inside run). ENV is added to the daemon's environment without its secrets,
        or, when not INHERIT_ENV, is all the command gets. TIMEOUT counts from the
        start."""
        start = ((argv, on_done, timeout),
                 dict(stdin=stdin, capture_stdout=capture_stdout, env=env,
                      inherit_env=inherit_env))
        if self.waiting or len(self.children) >= self.max_children:
            self.waiting.append(start)
            log.debug("%d commands running; %s waits for one to finish (%d waiting)",
                      len(self.children), argv[0], len(self.waiting))
            return None
        return self._start(*start[0], **start[1])

    def _start_waiting(self) -> None:
        while self.waiting and len(self.children) < self.max_children:
            args, options = self.waiting.popleft()
            self._start(*args, **options)

    def _start(self, argv: List[str], on_done: Callable[[Result], None], timeout: float,
               stdin: bytes = b"", capture_stdout: bool = False,
               env: Optional[Dict[str, str]] = None,
               inherit_env: bool = True) -> Optional[int]:
        try:
            process = subprocess.Popen(
                argv, cwd="/", env=child_environment(env) if inherit_env else dict(env or {}),
                start_new_session=True,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
                stderr=subprocess.PIPE)
        except OSError as error:
            failed = Result(status=127, stdout=b"", stderr=str(error).encode())
            self.loop.call_later(0, lambda: on_done(failed))
            return None
        child = _Child(process, on_done, stdin)
        self.children[process.pid] = child
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                fd = stream.fileno()
                os.set_blocking(fd, False)
                child.output[fd], child.sizes[fd] = [], 0
                child.open_fds.append(fd)
                self.loop.add_reader(fd, lambda fd=fd, c=child: self._read(c, fd))
        if process.stdin is not None:
            os.set_blocking(process.stdin.fileno(), False)
            self.loop.set_writer(process.stdin.fileno(), lambda c=child: self._write(c))
        child.timer = self.loop.call_later(timeout, lambda c=child: self._timeout(c))
        return process.pid

    def _write(self, child: _Child) -> None:
        fd = child.process.stdin.fileno()
        try:
            written = os.write(fd, child.stdin)
            child.stdin = child.stdin[written:]
        except BlockingIOError:
            return
        except OSError:  # the command closed its stdin: fine
            child.stdin = memoryview(b"")
        if not child.stdin:
            self.loop.set_writer(fd, None)
            child.process.stdin.close()

    def _read(self, child: _Child, fd: int) -> bool:
        """Read what FD holds now; False once it is at EOF (and closed for us)."""
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                self.loop.forget(fd)
                child.open_fds.remove(fd)
                return False
            if child.sizes[fd] < OUTPUT_LIMIT:
                child.output[fd].append(data[:OUTPUT_LIMIT - child.sizes[fd]])
            child.sizes[fd] += len(data)

    def _timeout(self, child: _Child) -> None:
        if child.status is None:
            child.timed_out = True
            try:
                os.killpg(child.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def reap(self) -> None:
        for child in list(self.children.values()):
            if child.status is None:
                child.status = child.process.poll()
                if child.status is not None:
                    self._maybe_done(child)

    def _maybe_done(self, child: _Child) -> None:
        """Once the command exited: what its pipes hold now is its output. A process it
        left behind that still holds a pipe is neither waited for nor killed."""
        if child.status is None:
            return
        for fd in list(child.open_fds):
            if self._read(child, fd):
                self.loop.forget(fd)
                child.open_fds.remove(fd)
        self.children.pop(child.process.pid, None)
        if child.timer is not None:
            child.timer.cancel()
        process = child.process
        if process.stdin is not None and not process.stdin.closed:
            self.loop.forget(process.stdin.fileno())
            process.stdin.close()
        stdout = b"".join(child.output[process.stdout.fileno()]) if process.stdout else b""
        stderr = b"".join(child.output[process.stderr.fileno()]) if process.stderr else b""
        truncated = any(size > OUTPUT_LIMIT for size in child.sizes.values())
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        child.on_done(Result(child.status, stdout, stderr, child.timed_out, truncated))
        self._start_waiting()

    def kill_all(self) -> None:
        self.waiting.clear()
        for child in self.children.values():
            try:
                os.killpg(child.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
