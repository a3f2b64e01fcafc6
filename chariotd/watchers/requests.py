"""Handlers for action directories whose files are requests to another role: shadow
updates (to the applier) and commands. Each file is sent in filename order; it
leaves new/ when its owner answers `applied`, and goes to failed/ on `rejected`."""

from __future__ import annotations

import itertools
import logging
from typing import Callable, Dict, Optional, Tuple, Union

from chariotd.ipc.messages import Applied, Command, LinkState, LocalUpdate, Rejected
from chariotd.kernel.runtime import APPLIER, LINK, RoleContext
from chariotd.watchers.actiondir import ActionDir
from chariotd.watchers.queue import Backlog, Entry

log = logging.getLogger(__name__)

MAX_REQUEST_FILE = 1 << 20

# route(name, data, request_id) -> (owner role, message), or a reason to refuse the file
Route = Callable[[str, bytes, int], Union[Tuple[str, object], str]]


class RequestsHandler:
    def __init__(self, context: RoleContext, actiondir: ActionDir, route: Route,
                 window: int = 1000):
        self.mailbox = context.mailbox
        self.actiondir = actiondir
        self.route = route
        self.window = window
        self.backlog = Backlog()
        self.inflight: Dict[int, str] = {}
        self.ids = itertools.count(1)

    def arrived(self, name: str) -> None:
        if name not in self.backlog and name not in self.inflight.values():
            self.backlog.add(Entry(name))
            self.pump()

    def rescan(self) -> None:
        for name in self.actiondir.scan():
            self.arrived(name)

    def on_inotify(self) -> None:
        for name in self.actiondir.arrivals(self.rescan):
            self.arrived(name)

    def pump(self) -> None:
        while len(self.inflight) < self.window:
            entry = self.backlog.pop()
            if entry is None:
                return
            name = entry.name
            try:
                data, _ = self.actiondir.read(name, MAX_REQUEST_FILE)
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as error:
                self.actiondir.fail(name, f"cannot read: {error}")
                continue
            request_id = next(self.ids)
            routed = self.route(name, data, request_id)
            if isinstance(routed, str):
                self.actiondir.fail(name, routed)
                continue
            owner, message = routed
            self.inflight[request_id] = name
            self.mailbox.send(owner, message)

    def handlers(self):
        """A requests watcher's dispatch table: message kind -> handler."""
        return {Applied: self.on_applied, Rejected: self.on_rejected,
                LinkState: self.on_link_state}

    def on_link_state(self, sender: str, state) -> None:
        """Nothing to do: requests go to the applier or the link, never to the broker;
        their owner answers them whether the link is up or not."""

    def on_applied(self, sender: str, reply: Applied) -> None:
        name = self.inflight.pop(reply.id, None)
        if name is not None:
            self.actiondir.remove(name)
            self.pump()

    def on_rejected(self, sender: str, reply: Rejected) -> None:
        name = self.inflight.pop(reply.id, None)
        if name is not None:
            self.actiondir.fail(name, reply.reason)
            self.pump()


def update_route(thing: str, shadow: Optional[str]) -> Route:
    """Shadow update files: `key` or `key.timestamp`; the content is the new value."""
    def route(name: str, data: bytes, request_id: int):
        key = name.split(".", 1)[0]
        if not key:
            return "the file name gives no shadow key"
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:  # os.listdir gave undecodable bytes as surrogates
            return "the file name is not UTF-8, so it names no shadow key"
        return APPLIER, LocalUpdate(id=request_id, thing=thing, shadow=shadow, key=key,
                                    data=data)
    return route


# Which role carries out each command; None: known, but not available in this build.
COMMAND_OWNERS: Dict[str, Optional[str]] = {
    "refetch": APPLIER,
    "reprovision": None,
    "open-tunnel": APPLIER,
    "close-tunnel": APPLIER,
}


def command_owners(config) -> Dict[str, Optional[str]]:
    """COMMAND_OWNERS for this configuration: `reprovision` goes to the link with
    --fleetprov."""
    return dict(COMMAND_OWNERS, reprovision=LINK) if config.fleetprov else COMMAND_OWNERS


def command_route(name: str, data: bytes, request_id: int,
                  owners: Dict[str, Optional[str]] = COMMAND_OWNERS):
    if name not in owners:
        return f"unknown command {name!r}"
    owner = owners[name]
    if owner is None:
        return f"command {name!r} is not available (its capability is not enabled)"
    return owner, Command(id=request_id, name=name, data=data)
