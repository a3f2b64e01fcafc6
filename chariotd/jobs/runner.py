"""One step of a job: one handler process, watched by the role's loop.

The program (`step_argv`): `HANDLER-DIR/HANDLER` (after the trust check of handlers.py)
with exactly the document's args, executed directly, no shell; a runCommand's argv only
with --jobs-allow-commands. It starts in its own session with `/` as working directory,
the allowlisted environment of chariotd/spawn.py plus JOB_ID, JOB_EXECUTION_NUMBER,
JOB_DOCUMENT and JOB_RESULT_FILE, as the step's runAsUser when the daemon is root (with
that user's HOME, USER, LOGNAME and groups; a user that does not exist fails the step).

While it runs (`HandlerRun`): stdout and stderr are read by the loop as data comes (a
handler writing any amount never blocks; the last TAIL_BYTES of each are kept); the exit
is seen through a pidfd; `on_tick` is called every PROGRESS_INTERVAL (the role reads
$JOB_RESULT_FILE then, so progress goes out at most once a second); at the time limit,
or on `stop()`, the process group gets SIGTERM, then SIGKILL after STOP_GRACE. A signal
to the group is only ever sent while the leader is not yet reaped (a zombie keeps its
pid), so it can never reach a group that reused the number.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from chariotd.kernel import deathsig
from chariotd.jobs.details import TAIL_BYTES, StepResult
from chariotd.jobs.document import RUN_COMMAND, Step
from chariotd.jobs.handlers import HandlerRefused, handler_path
from chariotd.kernel.loop import Loop
from chariotd.kernel.spawn import CannotStart, child_environment, refusal, start

log = logging.getLogger(__name__)

STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL to a handler's group
PROGRESS_INTERVAL = 1.0
COMMANDS_REFUSED = ("runCommand steps are not allowed on this device (--jobs-allow-commands "
                    "is off)")


class StepRefused(Exception):
    """A step that cannot start; str() is the reason the cloud is told."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    groups: tuple


def account(name: str) -> Optional[Account]:
    """Whom a step with runAsUser NAME runs as: None for the daemon's own user (no
    name, or the daemon is not root: it cannot switch). StepRefused for a user that
    does not exist."""
    if not name or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise StepRefused(f"runAsUser {name!r}: no such user") from None
    groups = tuple(g.gr_gid for g in grp.getgrall() if name in g.gr_mem)
    return Account(name, entry.pw_uid, entry.pw_gid, entry.pw_dir or "/", groups)


def step_argv(step: Step, handler_dir: str, allow_commands: bool) -> List[str]:
    if step.kind == RUN_COMMAND:
        if not allow_commands:
            raise StepRefused(COMMANDS_REFUSED)
        return list(step.args)
    try:
        return [handler_path(handler_dir, step.handler), *step.args]
    except HandlerRefused as error:
        raise StepRefused(str(error)) from None


def step_environment(job_id: str, execution_number: int, document_path: str,
                     result_path: str, user: Optional[Account]) -> Dict[str, str]:
    extra = {"JOB_ID": job_id, "JOB_EXECUTION_NUMBER": str(execution_number),
             "JOB_DOCUMENT": document_path, "JOB_RESULT_FILE": result_path}
    if user is not None:
        extra.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
    return child_environment(extra)


def _start(argv: Sequence[str], env: Dict[str, str],
           user: Optional[Account]) -> subprocess.Popen:
    """spawn.start, as USER when given. (Phase 2: a `user` parameter of spawn.start.)"""
    pipes = dict(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if user is None:
        return start(argv, env, with_parent=True, **pipes)
    reason = refusal(argv, env)
    if reason is not None:
        raise CannotStart(reason, refused=True)
    deathsig.prepare()
    try:
        return subprocess.Popen(list(argv), cwd="/", env=dict(env), start_new_session=True,
                                close_fds=True, user=user.uid, group=user.gid,
                                extra_groups=list(user.groups),
                                preexec_fn=deathsig.die_with_parent, **pipes)
    except OSError as error:
        raise CannotStart(error.strerror or str(error)) from None
    except (ValueError, subprocess.SubprocessError) as error:
        raise CannotStart(str(error), refused=True) from None


class HandlerRun:
    """One running step. `on_exit(StepResult)` is called once, from the loop."""

    def __init__(self, loop: Loop, argv: Sequence[str], env: Dict[str, str],
                 timeout: float, on_exit: Callable[[StepResult], None],
                 on_tick: Optional[Callable[[], None]] = None,
                 user: Optional[Account] = None, grace: float = STOP_GRACE,
                 tick: float = PROGRESS_INTERVAL):
        self.loop = loop
        self.on_exit = on_exit
        self.on_tick = on_tick
        self.grace = grace
        self.tick = tick
        self.timed_out = False
        self.stopping = False
        self.done = False
        self.tails: Dict[int, bytearray] = {}
        self.timers = []
        self.process = _start(argv, env, user)  # CannotStart: nothing to clean up
        self.pid = self.process.pid
        for stream in (self.process.stdout, self.process.stderr):
            fd = stream.fileno()
            os.set_blocking(fd, False)
            self.tails[fd] = bytearray()
            loop.add_reader(fd, lambda fd=fd: self._read(fd))
        self.pidfd = os.pidfd_open(self.pid)
        loop.add_reader(self.pidfd, self._exited)
        self.timers.append(loop.call_later(timeout, self._timeout))
        if on_tick is not None:
            self.timers.append(loop.call_later(tick, self._tick))

    # -- output ---------------------------------------------------------------------------
    def _read(self, fd: int) -> None:
        while fd in self.tails:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.loop.forget(fd)
                return
            tail = self.tails[fd]
            tail += data
            if len(tail) > TAIL_BYTES:
                del tail[:len(tail) - TAIL_BYTES]

    # -- time -------------------------------------------------------------------------------
    def _tick(self) -> None:
        if self.done:
            return
        self.timers.append(self.loop.call_later(self.tick, self._tick))
        self.on_tick()

    def _timeout(self) -> None:
        if not self.done:
            self.timed_out = True
            self.stop()

    # -- stopping ---------------------------------------------------------------------------
    def _signal_group(self, signum: int) -> None:
        """Only while the leader is unreaped (self.done is False): see the docstring."""
        if not self.done:
            try:
                os.killpg(self.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self) -> None:
        """SIGTERM to the group now, SIGKILL after the grace; on_exit follows the exit."""
        if self.stopping or self.done:
            return
        self.stopping = True
        log.info("stopping handler pid %d (SIGTERM to its group, SIGKILL in %g s)",
                 self.pid, self.grace)
        self._signal_group(signal.SIGTERM)
        self.timers.append(self.loop.call_later(self.grace,
                                                lambda: self._signal_group(signal.SIGKILL)))

    def _leader_exited(self) -> bool:
        """Whether the leader has exited, without reaping it (it keeps its pid)."""
        try:
            return os.waitid(os.P_PID, self.pid,
                             os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def stop_and_wait(self) -> None:
        """At the role's exit, the loop no longer running: SIGTERM to the group, SIGKILL
        to what is left of it once the leader exits or the grace is over, then reap;
        on_exit is not called (the record stays for the next start to report)."""
        if self.done:
            return
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while not self._leader_exited() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._signal_group(signal.SIGKILL)
        self.process.wait()
        self._close()

    # -- the exit -----------------------------------------------------------------------------
    def _exited(self) -> None:
        if self.done:
            return
        if self.stopping:  # what the group still holds goes with the leader
            self._signal_group(signal.SIGKILL)
        status = self.process.poll()
        if status is None:
            return
        for fd in list(self.tails):
            self._read(fd)
        stdout = bytes(self.tails.get(self.process.stdout.fileno(), b""))
        stderr = bytes(self.tails.get(self.process.stderr.fileno(), b""))
        self._close()
        self.on_exit(StepResult(exit_status=status, timed_out=self.timed_out,
                                stdout=stdout, stderr=stderr))

    def _close(self) -> None:
        self.done = True
        for timer in self.timers:
            timer.cancel()
        for fd in list(self.tails):
            self.loop.forget(fd)
        self.tails.clear()
        self.process.stdout.close()
        self.process.stderr.close()
        self.loop.forget(self.pidfd)
        os.close(self.pidfd)
