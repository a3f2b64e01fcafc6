"""The Supervisor in-process: the real parent code (fork, SIGCHLD, waitpid, SIGTERM then
SIGKILL) run inside the test process, over tiny real children that go through the real
runtime.child_main with test roles. Every child is accounted for: the fixture fails
the test if one is left running. The parent's mailbox (systemd only) is driven with the
fakes."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from chariotd import cli, supervisor
from chariotd.ipc.messages import LinkHeartbeat, LinkState
from chariotd.kernel.runtime import Role
from chariotd.kernel.sdnotify import Notifier
from fakes import FakeLoop, FakeMailbox, attach_mailbox

GRACE = 0.3
READY_WITHIN = 10.0
SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
MARKERS = Path("/nonexistent")  # set by the fixture before any fork


# -- the children (each runs in its own forked process, through runtime.child_main) -------

def _mark(context, what: str) -> None:
    (MARKERS / f"{context.role.id}.{what}").write_text(str(os.getpid()))


def _ready_all(count: int) -> bool:
    return len(list(MARKERS.glob("*.ready"))) >= count


def waits_for_sigterm(context) -> int:
    """A well-behaved role: runs its loop until SIGTERM (runtime: stop with 0)."""
    _mark(context, "ready")
    status = context.loop.run()
    _mark(context, "stopped")
    return status


def ignores_sigterm(context) -> int:
    """A wedged role: only SIGKILL ends it."""
    context.loop.on_signal(signal.SIGTERM, lambda: _mark(context, "sigterm"))
    _mark(context, "ready")
    return context.loop.run()


def exits_with(status: int, others: int):
    def run(context) -> int:
        deadline = time.monotonic() + READY_WITHIN  # the others in place first
        while not _ready_all(others) and time.monotonic() < deadline:
            time.sleep(0.01)
        return status
    return run


def killed_by_sigsegv(others: int):
    def run(context) -> int:
        exits_with(0, others)(context)
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGSEGV)
        return 0
    return run


def raises(others: int):
    def run(context) -> int:
        exits_with(0, others)(context)
        raise RuntimeError("boom")  # runtime.child_main: traceback logged, status 1
    return run


def role(name: str, run) -> Role:
    return Role(name, f"chariotd-test: {name}", name, run)


# -- the parent, recorded ------------------------------------------------------------------

class Recorded(supervisor.Supervisor):
    """The real Supervisor, recording the pids it forked and whom it signalled."""

    def start(self) -> None:
        super().start()
        self.started = dict(self.children)
        self.signalled = []
        self.signal_times = []

    def kill_all(self, signum: int) -> None:
        if self.children:
            self.signalled.append((signum, sorted(r.id for r in self.children.values())))
            self.signal_times.append(time.monotonic())
        super().kill_all(signum)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    global MARKERS
    MARKERS = tmp_path / "markers"
    MARKERS.mkdir()
    for name in ("RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the rundir goes there
    monkeypatch.setattr(supervisor, "GRACE", GRACE)
    statuses = []
    describe = supervisor.describe_status
    monkeypatch.setattr(supervisor, "describe_status",
                        lambda status: statuses.append(status) or describe(status))
    saved = {signum: signal.getsignal(signum) for signum in SIGNALS}
    config = cli.parse(["--clientid=dev1", "--cacert=/ca.pem", "--certstore=/x"])
    made = []

    def build(*roles) -> Recorded:
        made.append(Recorded(config, list(roles), notifier=Notifier(None)))
        made[-1].statuses = statuses
        return made[-1]

    yield build
    left = []
    for parent in made:
        for pid in getattr(parent, "started", {}):
            try:
                if os.waitpid(pid, os.WNOHANG) == (0, 0):  # still running
                    left.append(pid)
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            except ChildProcessError:
                pass  # reaped by the supervisor
        for fd in (getattr(parent, "parent_pipe", None), getattr(parent, "rundir_lock", None),
                   parent.loop._signal_pipe):
            if fd is not None:
                os.close(fd)
    wakeup = signal.set_wakeup_fd(-1)
    if wakeup >= 0:
        os.close(wakeup)
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    assert left == [], f"children left running: {left}"
    assert not list(tmp_path.glob(f"{supervisor.RUNDIR_PREFIX}*")), "the rundir stays"


# -- one for all ---------------------------------------------------------------------------

def test_a_child_that_exits_stops_the_others_sigterm_then_sigkill(tree):
    parent = tree(role("calm", waits_for_sigterm), role("wedged", ignores_sigterm),
                  role("fails", exits_with(3, others=2)))
    assert parent.run() == 1
    assert parent.signalled == [(signal.SIGTERM, ["calm", "wedged"]),
                                (signal.SIGKILL, ["wedged"])]
    assert parent.children == {}  # every child reaped
    assert (MARKERS / "calm.stopped").exists()  # it stopped in order on SIGTERM
    assert (MARKERS / "wedged.sigterm").exists()  # it was told, and ignored it
    assert set(parent.statuses) == {3 << 8, 0, signal.SIGKILL}  # exit 3, 0, killed
    sigterm, sigkill = parent.signal_times
    assert GRACE <= sigkill - sigterm < GRACE + 1.0  # after GRACE, not much later


@pytest.mark.parametrize("run, expected", [
    (exits_with(2, others=1), 2),       # a configuration error
    (exits_with(0, others=1), 0),       # a role that finished its job (provisioning)
    (exits_with(1, others=1), 1),
    (exits_with(3, others=1), 1),       # any other status: a runtime failure
    (raises(others=1), 1),              # an unexpected exception
    (killed_by_sigsegv(others=1), 1),   # a crash
])
def test_the_tree_exits_with_what_the_first_child_to_end_means(tree, run, expected):
    parent = tree(role("calm", waits_for_sigterm), role("ends", run))
    assert parent.run() == expected
    assert parent.signalled == [(signal.SIGTERM, ["calm"])]
    assert (MARKERS / "calm.stopped").exists() and parent.children == {}


def sigterm_when_ready(parent, count: int) -> None:
    """Send the parent SIGTERM (as runit or systemd stops the tree) once COUNT children
    are in place."""
    deadline = time.monotonic() + READY_WITHIN

    def check() -> None:
        if _ready_all(count) or time.monotonic() > deadline:
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            parent.loop.call_later(0.01, check)

    parent.loop.call_later(0.01, check)


def test_sigterm_stops_every_child_in_order_and_exits_0(tree):
    parent = tree(role("one", waits_for_sigterm), role("two", waits_for_sigterm))
    sigterm_when_ready(parent, 2)
    assert parent.run() == 0
    assert parent.signalled == [(signal.SIGTERM, ["one", "two"])]  # no SIGKILL needed
    assert (MARKERS / "one.stopped").exists() and (MARKERS / "two.stopped").exists()
    assert parent.statuses == [0, 0]


def test_sigterm_with_a_wedged_child_kills_it_after_the_grace_and_exits_0(tree):
    parent = tree(role("calm", waits_for_sigterm), role("wedged", ignores_sigterm))
    sigterm_when_ready(parent, 2)
    assert parent.run() == 0
    assert parent.signalled == [(signal.SIGTERM, ["calm", "wedged"]),
                                (signal.SIGKILL, ["wedged"])]
    sigterm, sigkill = parent.signal_times
    assert GRACE <= sigkill - sigterm < GRACE + 1.0
    assert sorted(parent.statuses) == [0, signal.SIGKILL]


# -- the parent's mailbox under systemd -----------------------------------------------------

class RecordingNotifier(Notifier):
    def __init__(self):
        super().__init__("/run/fake-notify", watchdog=8.0)
        self.lines = []

    def notify(self, *lines: str) -> bool:
        self.lines.extend(lines)
        return True


def test_link_news_becomes_ready_status_and_watchdog_pings():
    notifier = RecordingNotifier()
    parent = supervisor.Supervisor(cli.parse(["--clientid=dev1", "--cacert=/ca.pem",
                                              "--certstore=/x"]), [], notifier=notifier)
    parent.loop, parent.mailbox = FakeLoop(), FakeMailbox(supervisor.PARENT)
    attach_mailbox(parent.loop, parent.mailbox, parent.handlers())

    def hear(*messages):
        for message in messages:
            parent.mailbox.deliver("link", message)
        parent.loop.readable(parent.mailbox.socket)
        lines, notifier.lines = notifier.lines, []
        return lines

    assert hear(LinkState(up=True, client_id="dev1")) == ["READY=1",
                                                          "STATUS=connected as dev1"]
    assert hear(LinkState(up=False)) == ["STATUS=link down; reconnecting"]
    assert hear(LinkState(up=True, client_id="dev1")) == ["STATUS=connected as dev1"]
    assert hear(LinkHeartbeat(up=True, healthy=True)) == ["WATCHDOG=1"]
    assert hear(LinkHeartbeat(up=False, healthy=False),
                LinkHeartbeat(up=False, healthy=False)) == []  # a wedged link: no ping
