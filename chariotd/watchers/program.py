"""One run of a helper program (the letterhead generator) inside the role's poll loop:
its stdout pipe and its exit are file descriptors the loop watches, so the loop never
waits for it.

The program runs with no arguments, stdin from /dev/null, stderr shared with ours (so
what it complains about lands in our log), in a session of its own, and with exactly
the environment given. The run ends when the program exits (what it wrote before is
kept; a grandchild still holding the pipe is not waited for), when it has run
TIME_LIMIT seconds, or when its output passes MAX_OUTPUT bytes; in the last two cases
its whole process group is killed. DONE(output, None) is called once when it exited
with status 0, DONE(None, reason) otherwise; never from inside the constructor.

The exit is seen through a pidfd (Linux 5.3 and later); on older kernels by checking
every POLL_INTERVAL seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Callable, Dict, List, Optional

Done = Callable[[Optional[bytes], Optional[str]], None]

POLL_INTERVAL = 0.01


class ProgramRun:
    def __init__(self, loop, program: str, env: Dict[str, str], time_limit: float,
                 max_output: int, done: Done):
        self.loop = loop
        self.program = program
        self.time_limit = time_limit
        self.max_output = max_output
        self._done: Optional[Done] = done
        self._chunks: List[bytes] = []
        self._size = 0
        self._stdout: Optional[int] = None
        self._pidfd: Optional[int] = None
        self._poll_timer = None
        self._limit_timer = None
        try:
            self.process = subprocess.Popen(
                [program], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env,
                close_fds=True, start_new_session=True)
        except OSError as error:
            self.process = None
            reason = f"cannot run {program}: {error.strerror or error}"
            loop.call_later(0, lambda: self._finish(None, reason))
            return
        self._stdout = self.process.stdout.fileno()
        os.set_blocking(self._stdout, False)
        loop.add_reader(self._stdout, self._readable)
        try:
            self._pidfd = os.pidfd_open(self.process.pid)
        except (AttributeError, OSError):
            self._poll_timer = loop.call_later(POLL_INTERVAL, self._poll)
        else:
            loop.add_reader(self._pidfd, self._exited)
        self._limit_timer = loop.call_later(time_limit, self._too_slow)

    @property
    def finished(self) -> bool:
        return self._done is None

    # -- events -------------------------------------------------------------------------
    def _readable(self) -> None:
        while self._stdout is not None:
            try:
                chunk = os.read(self._stdout, 65536)
            except BlockingIOError:
                return
            except OSError as error:
                self._close_stdout()
                self._kill()
                self._finish(None, f"cannot read its output: {error.strerror}")
                return
            if not chunk:
                self._close_stdout()  # EOF; the exit is still to come
                return
            self._chunks.append(chunk)
            self._size += len(chunk)
            if self._size > self.max_output:
                self._kill()
                self._finish(None, f"wrote more than {self.max_output} bytes")
                return

    def _poll(self) -> None:
        self._poll_timer = None
        if self.process.poll() is None:
            self._poll_timer = self.loop.call_later(POLL_INTERVAL, self._poll)
        else:
            self._exited()

    def _exited(self) -> None:
        status = self.process.poll()
        if status is None:
            return  # not yet (a spurious wake-up)
        self._close_pidfd()
        if self._done is None:
            return  # already reported (killed); now reaped too
        self._readable()  # what it wrote before exiting is in the pipe
        if self._done is None:
            return
        self._close_stdout()
        if status == 0:
            self._finish(b"".join(self._chunks), None)
        elif status < 0:
            self._finish(None, f"{self.program} was killed by signal {-status}")
        else:
            self._finish(None, f"{self.program} exited with status {status}")

    def _too_slow(self) -> None:
        self._limit_timer = None
        self._kill()
        self._finish(None, f"{self.program} did not finish within {self.time_limit:g} s")

    # -- ending -------------------------------------------------------------------------
    def _kill(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _finish(self, output: Optional[bytes], failure: Optional[str]) -> None:
        done, self._done = self._done, None
        self._close_stdout()
        if self._limit_timer is not None:
            self._limit_timer.cancel()
            self._limit_timer = None
        if done is not None:
            done(output, failure)
        # a killed process is reaped when its pidfd (or the poll) reports the exit

    def cancel(self) -> None:
        """Stop caring: kill the program (if running) and report nothing."""
        self._done = None
        self._kill()
        self._finish(None, None)
        if self.process is not None:
            try:
                self.process.wait(1)  # killed with SIGKILL: at once
            except subprocess.TimeoutExpired:
                pass
        self._close_pidfd()

    def _close_stdout(self) -> None:
        if self._stdout is not None:
            self.loop.forget(self._stdout)
            self.process.stdout.close()
            self._stdout = None

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            self.loop.forget(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
