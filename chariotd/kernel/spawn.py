"""Start child processes, one way for all of them: notify commands, the default shadow
command, subscribe-exec handlers, letterhead generators, the fleet-provisioning notify
command (all through `Spawner.run`, which never blocks the poll loop) and the tunnel
proxy (through `start`, which its owner watches itself).

Every child runs in its own session (so a timeout kills its whole process group), with
`/` as working directory and an environment built from ALLOWED_ENVIRONMENT plus the
variables chariotd sets for that child. Text that cannot reach exec (a NUL, a lone
surrogate) is refused before fork (`refusal`), so a hostile value is a refused start,
never an exception that ends a role. For `Spawner.run`, the output pipes are read by
the loop as data arrives; the exit is noticed on SIGCHLD, and then `on_done(Result)` is
called with what the command wrote (a daemon it started that still holds the pipes is
not waited for).

At most MAX_CHILDREN commands of a role run at once; further starts wait in a FIFO
queue and start as running ones finish, each with its full timeout from when it
actually starts. The queue stays small because every caller has at most one command
waiting (notify commands are coalesced per service, a subscription handles one message
at a time, one letterhead generator, one default shadow command per shadow).
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

from chariotd.kernel import deathsig
from chariotd.kernel.loop import Loop

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 1 << 20  # bytes kept of a command's stdout or stderr

# Commands of one role running at once. Each holds up to three pipes in the role (48
# fds, far from the usual 1024) and a shell's few hundred KB; a device's services are
# fewer, and on a 2-core device more would only make each one slower.
MAX_CHILDREN = 16

# What a child inherits from the daemon's environment: an allowlist, so that whatever
# else the supervisor was started with (API_KEY, DB_PASS, SSH_AUTH_SOCK, AWS_*, systemd's
# NOTIFY_SOCKET, the test seams' CHARIOTD_*) stays with us.
#   PATH               how a command finds its programs (DEFAULT_PATH when we have none)
#   HOME, USER, LOGNAME  who the command runs as; tools read their own config from HOME
#   LANG, LANGUAGE, LC_*  the locale: how the command reads and writes text
#   TZ                 the local time the command prints
#   TMPDIR             where it may write temporary files (a device with a read-only /)
# Not TERM (no child has a terminal), SHELL, LD_*, PYTHON*, or any other name.
ALLOWED_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR")
ALLOWED_PREFIXES = ("LC_",)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# A variable whose name says it holds a secret: its value is never shown in a log line.
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "KEY")
SHOWN_VALUE = 60  # characters of a refused value shown (escaped) in a log line


def child_environment(extra: Optional[Mapping[str, str]] = None,
                      inherited: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The allowed part of INHERITED (the daemon's environment), then EXTRA: the
    variables chariotd sets for this child."""
    inherited = os.environ if inherited is None else inherited
    env = {name: value for name, value in inherited.items()
           if name in ALLOWED_ENVIRONMENT or name.startswith(ALLOWED_PREFIXES)}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(extra or {})
    return env


def _flaw(text: str) -> Optional[str]:
    """What keeps TEXT from reaching exec, or None. exec takes C strings, so no NUL;
    Python encodes with the file system encoding and surrogateescape (as subprocess
    does), so a lone surrogate other than those standing for undecodable bytes of a file
    name cannot be encoded."""
    if not isinstance(text, str):
        return f"is a {type(text).__name__}, not text"
    if "\0" in text:
        return f"holds a NUL at character {text.index(chr(0))}"
    try:
        os.fsencode(text)
    except UnicodeError as error:
        return ("holds text that cannot be encoded (a lone surrogate) at character "
                f"{error.start}")
    return None


def escaped(text: str, limit: int = SHOWN_VALUE) -> str:
    """TEXT as one printable piece of a log line: quoted, escapes for everything else."""
    shown_text = text if len(text) <= limit else text[:limit] + "..."
    return ascii(shown_text)


def refusal(argv: Sequence[str], env: Mapping[str, str]) -> Optional[str]:
    """Why ARGV with ENV cannot be started (naming the argument or variable, escaped,
    never the value of a secret), or None."""
    if not argv:
        return "no command"
    for index, argument in enumerate(argv):
        flaw = _flaw(argument)
        if flaw is not None:
            shown_argument = f" {escaped(argument)}" if isinstance(argument, str) else ""
            return f"argument {index}{shown_argument} {flaw}"
    for name, value in env.items():
        flaw = _flaw(name)
        if flaw is None and (not name or "=" in name):
            flaw = "is not a variable name"
        if flaw is not None:
            return f"environment variable name {escaped(str(name))} {flaw}"
        flaw = _flaw(value)
        if flaw is not None:
            secret = any(word in name.upper() for word in _SECRET_WORDS)
            shown_value = "" if secret or not isinstance(value, str) else f" {escaped(value)}"
            return f"environment variable {name}{shown_value} {flaw}"
    return None


class CannotStart(Exception):
    """A child that was not started; the text says why. REFUSED: because of what its
    argv or environment holds (the input that carried it is at fault), not because the
    program cannot be run."""

    def __init__(self, reason: str, refused: bool = False):
        super().__init__(reason)
        self.refused = refused


def start(argv: Sequence[str], env: Mapping[str, str], *, stdin=subprocess.DEVNULL,
          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
          with_parent: bool = False) -> subprocess.Popen:
    """Start ARGV with exactly ENV (build it with `child_environment`) in its own session
    with `/` as working directory, or raise CannotStart. WITH_PARENT: the child gets
    SIGTERM when its parent (this process) dies."""
    reason = refusal(argv, env)
    if reason is not None:
        raise CannotStart(reason, refused=True)
    if with_parent:
        deathsig.prepare()
    try:
        return subprocess.Popen(list(argv), cwd="/", env=dict(env), start_new_session=True,
                                close_fds=True, stdin=stdin, stdout=stdout, stderr=stderr,
                                preexec_fn=deathsig.die_with_parent if with_parent else None)
    except OSError as error:  # the program is missing, not executable, ...
        raise CannotStart(error.strerror or str(error)) from None
    except (ValueError, subprocess.SubprocessError) as error:  # refusal() missed it
        raise CannotStart(str(error), refused=True) from None


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
    refused: Optional[str] = None  # not started: why (see `refusal`)

    @property
    def ok(self) -> bool:
        return self.status == 0 and not self.timed_out

    def describe(self) -> str:
        if self.refused is not None:
            return f"was not started: {self.refused}"
        if self.timed_out:
            return "timed out and was killed"
        if self.status is not None and self.status < 0:
            return f"was killed by signal {-self.status}"
        return f"exited with status {self.status}"


class _Child:
    def __init__(self, process: subprocess.Popen, on_done, stdin: bytes, started: float):
        self.process = process
        self.started = started  # the loop's clock at the start, for the debug line
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
        from inside run). ENV is added to the allowed part of the daemon's environment, or, when not
        INHERIT_ENV, is all the command gets. A refused start gets a Result that says
        why. TIMEOUT counts from the
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
            process = start(argv, child_environment(env) if inherit_env else dict(env or {}),
                            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL)
        except CannotStart as error:
            if error.refused:
                failed = Result(status=None, stdout=b"", stderr=b"", refused=str(error))
            else:  # the program cannot be run (missing, not executable, ...)
                failed = Result(status=127, stdout=b"", stderr=str(error).encode())
            self.loop.call_later(0, lambda: on_done(failed))
            return None
        child = _Child(process, on_done, stdin, self.loop.clock())
        self.children[process.pid] = child
        log.debug("started %s (pid %d)", escaped(argv[0]), process.pid)
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
        result = Result(child.status, stdout, stderr, child.timed_out, truncated)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s (pid %d) %s after %.3f s", escaped(process.args[0]), process.pid,
                      result.describe(), self.loop.clock() - child.started)
        child.on_done(result)
        self._start_waiting()

    def kill_all(self) -> None:
        self.waiting.clear()
        for child in self.children.values():
            try:
                os.killpg(child.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
