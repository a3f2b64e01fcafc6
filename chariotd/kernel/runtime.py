"""What every child process does first, whatever its role: take its title, reset
signals, make sure it dies with the parent, open its mailbox, and run its loop.

    chariotd: link
    chariotd: watch messages /var/chariotd/mqtt
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from typing import Callable, List, NamedTuple, Optional, Sequence

import setproctitle

from chariotd.kernel import log
from chariotd.kernel.deathsig import die_with_parent
from chariotd.config import Config

LINK = "link"
APPLIER = "applier"
DEFENDER = "defender"  # with --defender: chariotd/defender/main.py
JOBS = "jobs"  # with --jobs: chariotd/jobs/main.py


class Role(NamedTuple):
    """One child process of the tree."""
    id: str                 # mailbox name, short: the ipc:// path has a length limit
    title: str              # process title, e.g. "chariotd: link"
    log_name: str           # prefix of its log lines, e.g. "link" or "watch mqtt"
    run: Callable[["RoleContext"], int]
    options: object = None  # role-specific settings (a MessageDir; the link's provisioner)


class RoleContext(NamedTuple):
    role: Role
    config: Config
    rundir: str
    parent_fd: int
    parent_pid: int
    roles: Sequence[Role] = ()
    parent_mailbox: Optional[str] = None      # the parent's role id when it listens (systemd)
    heartbeat_interval: Optional[float] = None  # link -> parent heartbeats (systemd watchdog)
    loop: object = None
    mailbox: object = None

    def peers(self, prefix: str = "") -> List[str]:
        return [r.id for r in self.roles if r.id != self.role.id and r.id.startswith(prefix)]


def _die_with_parent(parent_pid: int) -> None:
    die_with_parent()  # the parent pipe is the real mechanism; this is a bonus
    if os.getppid() != parent_pid:
        os._exit(1)


def child_main(context: RoleContext) -> None:
    """Entry point right after fork; never returns."""
    status = 1
    try:
        # Forget the parent's signal plumbing first: its wake-up pipe is shared with
        # the parent, and a signal written into it would look like the parent's own.
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _die_with_parent(context.parent_pid)
        setproctitle.setproctitle(context.role.title)
        log.rename_role(context.role.log_name)
        for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        status = _run(context)
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        logging.getLogger(__name__).error("crashed: %s", traceback.format_exc())
        status = 1
    finally:
        try:
            sys.stderr.flush()
        except Exception:
            pass
        os._exit(status)


def _run(context: RoleContext) -> int:
    import zmq

    from chariotd.ipc.mailbox import Mailbox
    from chariotd.kernel.loop import Loop

    zmq_context = zmq.Context(1)
    loop = Loop()
    mailbox = Mailbox(zmq_context, context.rundir, context.role.id)
    context = context._replace(loop=loop, mailbox=mailbox)
    logger = logging.getLogger(__name__)

    def parent_gone() -> None:
        logger.error("the parent process is gone; exiting")
        loop.stop(1)

    loop.add_reader(context.parent_fd, parent_gone)
    loop.on_signal(signal.SIGTERM, lambda: loop.stop(0))
    try:
        return context.role.run(context)
    finally:
        mailbox.close()
        zmq_context.term()
