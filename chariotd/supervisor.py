"""The parent of the tree: fork one process per role, then only wait.

If any child exits, for any reason, the others are stopped (SIGTERM, then SIGKILL
after GRACE seconds) and the parent exits: 0 if that child finished its job (exit 0,
e.g. fleet provisioning), 2 if it found a configuration error, 1 otherwise. runit or
systemd restarts the whole tree. SIGTERM/SIGINT stop everything and exit 0.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import tempfile
from typing import Dict, List

from chariotd.cli import Config
from chariotd.loop import Loop
from chariotd.runtime import Role, RoleContext, child_main

log = logging.getLogger(__name__)

GRACE = 1.0


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def exit_status_for(status: int) -> int:
    """The tree's exit status when a child ended with wait status STATUS first."""
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0, 2):
        return os.WEXITSTATUS(status)
    return 1


def make_rundir() -> str:
    base = os.environ.get("RUNTIME_DIRECTORY") or os.environ.get("XDG_RUNTIME_DIR")
    if not base or not os.access(base, os.W_OK):
        base = None
    path = tempfile.mkdtemp(prefix="chariotd-", dir=base)
    os.chmod(path, 0o700)
    return path


class Supervisor:
    def __init__(self, config: Config, roles: List[Role]):
        self.config = config
        self.roles = roles
        self.children: Dict[int, Role] = {}
        self.loop = Loop()
        self.exit_status = 0
        self.stopping = False
        self.kill_timer = None

    def start(self) -> None:
        self.rundir = make_rundir()
        read_fd, write_fd = os.pipe()
        parent_pid = os.getpid()
        gc.freeze()  # keep module pages shared copy-on-write with the children
        for role in self.roles:
            pid = os.fork()
            if pid == 0:
                os.close(write_fd)
                child_main(RoleContext(role=role, config=self.config, rundir=self.rundir,
                                       parent_fd=read_fd, parent_pid=parent_pid,
                                       roles=self.roles))
            self.children[pid] = role
        os.close(read_fd)
        self.parent_pipe = write_fd  # closed only by our death: children see EOF
        gc.unfreeze()

    def run(self) -> int:
        loop = self.loop
        loop.on_signal(signal.SIGCHLD, self.reap)
        loop.on_signal(signal.SIGTERM, lambda: self.stop("SIGTERM", 0))
        loop.on_signal(signal.SIGINT, lambda: self.stop("SIGINT", 0))
        loop.on_signal(signal.SIGHUP, lambda: log.info("SIGHUP: nothing to refetch yet"))
        try:
            self.start()
            self.reap()  # a child may have died before the handler was in place
            return loop.run()
        finally:
            self.kill_all(signal.SIGKILL)
            shutil.rmtree(getattr(self, "rundir", ""), ignore_errors=True)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            role = self.children.pop(pid, None)
            if role is None:
                continue
            if self.stopping:
                log.debug("%s %s", role.log_name, describe_status(status))
            else:
                log.error("%s (pid %d) %s; stopping the others", role.log_name, pid,
                          describe_status(status))
                self.stop(None, exit_status_for(status))
        if self.stopping and not self.children:
            self.loop.stop(self.exit_status)

    def stop(self, reason, status: int) -> None:
        if self.stopping:
            return
        if reason:
            log.info("%s: stopping", reason)
        self.stopping = True
        self.exit_status = status
        self.kill_all(signal.SIGTERM)
        self.kill_timer = self.loop.call_later(GRACE, lambda: self.kill_all(signal.SIGKILL))
        self.reap()

    def kill_all(self, signum: int) -> None:
        for pid, role in list(self.children.items()):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
            if signum == signal.SIGKILL:
                log.warning("%s did not stop in time; killed", role.log_name)
