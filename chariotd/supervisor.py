"""The parent of the tree: fork one process per role, then only wait.

If any child exits, for any reason, the others are stopped (SIGTERM, then SIGKILL
after GRACE seconds) and the parent exits: 0 if that child finished its job (exit 0,
e.g. fleet provisioning), 2 if it found a configuration error, 1 otherwise. runit or
systemd restarts the whole tree. SIGTERM/SIGINT stop everything and exit 0.

Under systemd (`Type=notify`, $NOTIFY_SOCKET set) the parent also binds a mailbox,
`parent`, after the fork (never before: no zmq context may exist across a fork). The
link sends it `link_state` (READY=1 on the first connection, STATUS= lines) and, when
WatchdogSec= is set, a `link_heartbeat` every WatchdogSec/4; each healthy heartbeat
becomes one WATCHDOG=1. A wedged link, or a wedged parent, stops the pings and
systemd restarts the service. STOPPING=1 goes out when the tree starts to stop.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import shutil
import signal
import tempfile
from typing import Dict, List, Optional, Tuple

from chariotd.config import Config
from chariotd.ipc.messages import LinkHeartbeat, LinkState
from chariotd.kernel.loop import Loop
from chariotd.kernel.runtime import APPLIER, Role, RoleContext, child_main
from chariotd.kernel.sdnotify import Notifier

log = logging.getLogger(__name__)

GRACE = 1.0
PARENT = "parent"  # the parent's mailbox, bound only under systemd

# The tree's exit statuses (DESIGN.md section 6); the man page is generated from this.
EXIT_STATUSES = {
    0: "stopped by SIGTERM or SIGINT (or a role finished its job, e.g. fleet provisioning)",
    1: "runtime failure: a child process died, repeated connection failures, "
       "a jammed message queue, no certificate",
    2: "configuration error: a bad flag or value, a missing certstore or endpoint.txt, "
       "an unreadable --cacert or other file the command line names",
}


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def exit_status_for(status: int) -> int:
    """The tree's exit status when a child ended with wait status STATUS first."""
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0, 2):
        return os.WEXITSTATUS(status)
    return 1


RUNDIR_PREFIX = "chariotd-"
RUNDIR_LOCK = "lock"  # held (flock) by the tree while it runs; children inherit it


def sweep_stale_rundirs(base: str) -> List[str]:
    """Remove the runtime directories of trees that were killed outright (SIGKILL, OOM):
    theirs is the only place that removes them. A directory is stale when nobody holds
    its lock; directories without a lock (another tree still creating its own) are
    left alone. Returns the names removed."""
    removed = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        try:
            if (not entry.name.startswith(RUNDIR_PREFIX)
                    or not entry.is_dir(follow_symlinks=False)
                    or entry.stat(follow_symlinks=False).st_uid != os.geteuid()):
                continue
            fd = os.open(os.path.join(entry.path, RUNDIR_LOCK),
                         os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a running tree holds it
        finally:
            os.close(fd)
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.name)
    return removed


def make_rundir() -> Tuple[str, int]:
    """A private runtime directory and the fd of its lock, held until the whole tree
    is gone (the children inherit it across fork; it is closed on exec)."""
    base = os.environ.get("RUNTIME_DIRECTORY") or os.environ.get("XDG_RUNTIME_DIR")
    if not base or not os.access(base, os.W_OK):
        base = None
    removed = sweep_stale_rundirs(base or tempfile.gettempdir())
    if removed:
        log.info("removed the runtime directories of killed runs: %s", ", ".join(removed))
    path = tempfile.mkdtemp(prefix=RUNDIR_PREFIX, dir=base)
    os.chmod(path, 0o700)
    # Locked before it gets its name, so that a sweeper never sees it unlocked.
    building = os.path.join(path, f".{RUNDIR_LOCK}")
    lock_fd = os.open(building, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    os.rename(building, os.path.join(path, RUNDIR_LOCK))
    return path, lock_fd


class Supervisor:
    def __init__(self, config: Config, roles: List[Role], notifier: Optional[Notifier] = None):
        self.config = config
        self.roles = roles
        self.children: Dict[int, Role] = {}
        self.loop = Loop()
        self.exit_status = 0
        self.stopping = False
        self.kill_timer = None
        # Read (and removed from the environment, so no child inherits it) before any fork.
        self.notifier = notifier if notifier is not None else Notifier.from_environment()
        self.mailbox = None
        self.zmq_context = None
        self.ready = False
        self.unhealthy_logged = False

    def start(self) -> None:
        self.rundir, self.rundir_lock = make_rundir()
        listen = PARENT if self.notifier.enabled else None
        heartbeat = self.notifier.watchdog / 4 if self.notifier.watchdog else None
        read_fd, write_fd = os.pipe()
        parent_pid = os.getpid()
        gc.freeze()  # keep module pages shared copy-on-write with the children
        for role in self.roles:
            pid = os.fork()
            if pid == 0:
                os.close(write_fd)
                child_main(RoleContext(role=role, config=self.config, rundir=self.rundir,
                                       parent_fd=read_fd, parent_pid=parent_pid,
                                       roles=self.roles, parent_mailbox=listen,
                                       heartbeat_interval=heartbeat))
            self.children[pid] = role
        os.close(read_fd)
        self.parent_pipe = write_fd  # closed only by our death: children see EOF
        gc.unfreeze()
        if listen:
            self.listen()
            self.notifier.status("connecting to the broker")

    # -- systemd -----------------------------------------------------------------------
    def listen(self) -> None:
        """Bind the parent's mailbox (after the fork) to hear from the link."""
        import zmq

        from chariotd.ipc.mailbox import Mailbox
        self.zmq_context = zmq.Context(1)
        self.mailbox = Mailbox(self.zmq_context, self.rundir, PARENT)
        handlers = self.handlers()
        self.loop.add_reader(self.mailbox.socket, lambda: self.mailbox.dispatch(handlers))

    def handlers(self):
        """The parent's dispatch table (its mailbox hears only the link)."""
        return {LinkState: self.on_link_state, LinkHeartbeat: self.on_link_heartbeat}

    def on_link_state(self, sender: str, state: LinkState) -> None:
        if self.stopping:
            return
        if state.up:
            status = f"connected as {state.client_id}"
            if not self.ready:
                self.ready = True
                self.notifier.ready(status)
                log.debug("told systemd: ready")
            else:
                self.notifier.status(status)
        else:
            self.notifier.status("link down; reconnecting")

    def on_link_heartbeat(self, sender: str, beat: LinkHeartbeat) -> None:
        if self.stopping:
            return
        if beat.healthy:
            self.notifier.watchdog_ping()
            self.unhealthy_logged = False
        elif not self.unhealthy_logged:
            log.warning("the link reports itself unhealthy; not feeding the watchdog")
            self.unhealthy_logged = True

    def close_mailbox(self) -> None:
        if self.mailbox is not None:
            self.loop.forget(self.mailbox.socket)
            self.mailbox.close()
            self.mailbox = None
        if self.zmq_context is not None:
            self.zmq_context.term()
            self.zmq_context = None

    def run(self) -> int:
        loop = self.loop
        loop.on_signal(signal.SIGCHLD, self.reap)
        loop.on_signal(signal.SIGTERM, lambda: self.stop("SIGTERM", 0))
        loop.on_signal(signal.SIGINT, lambda: self.stop("SIGINT", 0))
        loop.on_signal(signal.SIGHUP, self.refetch)
        try:
            self.start()
            self.reap()  # a child may have died before the handler was in place
            return loop.run()
        finally:
            self.kill_all(signal.SIGKILL)
            self.close_mailbox()
            self.notifier.close()
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
                # Exit 0 is a role that finished its job (fleet provisioning): no error.
                done = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
                log.log(logging.INFO if done else logging.ERROR,
                        "%s (pid %d) %s; stopping the others", role.log_name, pid,
                        describe_status(status))
                self.stop(None, exit_status_for(status),
                          f"{role.log_name} {describe_status(status)}")
        if self.stopping and not self.children:
            self.loop.stop(self.exit_status)

    def stop(self, reason, status: int, why: str = "") -> None:
        if self.stopping:
            return
        if reason:
            log.info("%s: stopping", reason)
        self.stopping = True
        self.exit_status = status
        self.notifier.stopping(f"stopping: {why or reason}")
        self.kill_all(signal.SIGTERM)
        self.kill_timer = self.loop.call_later(GRACE, lambda: self.kill_all(signal.SIGKILL))
        self.reap()

    def refetch(self) -> None:
        """SIGHUP: the applier refetches every shadow (it handles its own SIGHUP)."""
        for pid, role in self.children.items():
            if role.id == APPLIER:
                log.info("SIGHUP: asking the applier to refetch the shadows")
                os.kill(pid, signal.SIGHUP)
                return
        log.info("SIGHUP: no shadow to refetch")

    def kill_all(self, signum: int) -> None:
        for pid, role in list(self.children.items()):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
            if signum == signal.SIGKILL:
                log.warning("%s did not stop in time; killed", role.log_name)
