"""The real applier (`services.main.Applier`) with fakes around it: a loop that only
records timers, a mailbox that checks and records every frame it is asked to send (as
the real one does, so a frame it would refuse fails the test), and notify commands
recorded instead of run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import List, Tuple

from chariotd import cli
from chariotd.ipc.messages import (LinkState, ShadowRequest, ShadowResponse, decode, encode,
                                   validate)
from chariotd.kernel.loop import Timer
from chariotd.kernel.runtime import Role, RoleContext
from chariotd.services.main import Applier

THING = "dev1"


class FakeLoop:
    def __init__(self):
        self.now = 0.0
        self.timers: List[Timer] = []

    def clock(self) -> float:
        return self.now

    def call_later(self, delay, callback) -> Timer:
        timer = Timer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def on_signal(self, signum, callback) -> None:
        pass

    def add_reader(self, key, callback) -> None:
        pass

    def set_writer(self, key, callback) -> None:
        pass

    def forget(self, key) -> None:
        pass

    def after_each(self, callback) -> None:
        pass


class FakeMailbox:
    def __init__(self):
        self.sent: List[Tuple[str, object]] = []

    def send(self, role: str, message) -> None:
        validate(message)
        assert decode(encode(message, "applier"))[1] == message
        self.sent.append((role, message))

    def requests(self, action: str) -> List[dict]:
        return [json.loads(m.payload) for _, m in self.sent
                if isinstance(m, ShadowRequest) and m.action == action]


SERVICES = {
    "cfgjson": ("JSON", "JSON", ""),
    "cfgshell": ("SHELL", "SHELL", ""),
    "cfgtext": ("PLAINTEXT", "PLAINTEXT", ""),
    "cfgpick": ("JSON", "JSON", "outkeys: ['a', 'b'], notifykeys: ['a'],"),
    "cfgonce": (None, "JSON", "ephemeraldata: true,"),
}


def write_services(root: Path) -> Path:
    svcs, out = root / "svcs", root / "out"
    svcs.mkdir(parents=True, exist_ok=True)
    out.mkdir(exist_ok=True)
    for key, (outformat, informat, extra) in SERVICES.items():
        lines = f"outfile: '{out / key}', outformat: '{outformat}'," if outformat else ""
        (svcs / f"{key}.js").write_text(textwrap.dedent(f"""\
            module.exports = {{
              key: '{key}', {lines} informat: '{informat}', notifycmd: 'true', {extra}
            }}
            """))
    return svcs


class FakeApplier:
    """An Applier for THING's classic shadow with one service per outformat."""

    def __init__(self, root: Path, extra_args=()):
        self.root = root
        self.out = root / "out"
        svcs = write_services(root)
        self.config = cli.parse(["--clientid=dev1", "--cacert=/nonexistent", "--certstore=/x",
                                 f"--services={THING}:{svcs}", *extra_args])
        self.loop, self.mailbox = FakeLoop(), FakeMailbox()
        context = RoleContext(role=Role("applier", "chariotd: applier", "applier", None),
                              config=self.config, rundir=str(root), parent_fd=-1,
                              parent_pid=0, loop=self.loop, mailbox=self.mailbox)
        self.applier = Applier(context)
        self.notified: List[str] = []
        for services in self.applier.services.values():
            for service in services.values():
                service.notify = lambda definition, config, outfile=None: \
                    self.notified.append(definition.key)
        self.sync = self.applier.syncs[cli.ThingShadow(THING)]

    def link_up(self) -> None:
        self.applier.on_link_state("link", LinkState(up=True))

    def respond(self, action: str, status: str, payload: bytes) -> None:
        self.applier.on_shadow_response("link", ShadowResponse(
            thing=THING, shadow=None, action=action, status=status, payload=payload))

    def respond_json(self, action: str, status: str, document: dict) -> None:
        text = json.dumps(document).replace("Infinity", "1e999").replace("NaN", "0")
        self.respond(action, status, text.encode("utf-8", "surrogatepass"))

    def get_accepted(self, desired: dict, reported=None, version: int = 1) -> None:
        """Answer the get in flight with this document."""
        state = {"desired": desired}
        if reported is not None:
            state["reported"] = reported
        self.respond_json("get", "accepted", {"state": state, "version": version,
                                              "clientToken": self.sync.get_token})

    def accept_update(self) -> None:
        """The shadow accepts the update in flight."""
        inflight = self.sync.inflight
        if inflight is not None:
            self.respond_json("update", "accepted", {"clientToken": inflight.token,
                                                     "version": self.sync.version + 1})
