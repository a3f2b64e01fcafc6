"""The applier role: the only process that writes outfiles and runs commands.

It loads the service definitions, keeps one ShadowSync per shadow, applies the
updates and commands the watchers hand it, and answers them once they are finished.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Dict, Optional, Tuple

from chariotd import formats
from chariotd.kernel.mqtt.deadlines import from_environment
from chariotd.config import Config, ThingShadow
from chariotd.formats import FormatError
from chariotd.kernel.fsutil import remove_stale_temps
from chariotd.ipc.messages import (Applied, Command, LinkState, LocalUpdate, Message,
                                   Rejected, RequestTimeout, ShadowRequest, ShadowResponse)
from chariotd.kernel.memory import AfterBursts
from chariotd.kernel.runtime import LINK, RoleContext
from chariotd.services.default_shadow import DefaultShadow
from chariotd.services.definitions import load_directory
from chariotd.services.notify import Notifier
from chariotd.services.service import Service
from chariotd.services.shadow_sync import ShadowSync
from chariotd.services.subscriptions import Subscriptions
from chariotd.services.tunnels import Tunnels
from chariotd.formats.json import ENVELOPE_DEPTH, load as load_json
from chariotd.shadow.values import has_null_in_array
from chariotd.kernel.spawn import Spawner

log = logging.getLogger(__name__)


def load_services(config: Config, notifier) -> Dict[ThingShadow, Dict[str, Service]]:
    """Every --services directory's definitions; a file that cannot be loaded is
    skipped with one error line naming it and why."""
    services: Dict[ThingShadow, Dict[str, Service]] = {}
    for target, directory in config.services:
        definitions, errors = load_directory(directory)
        for path, reason in errors:
            log.error("service definition %s skipped: %s", path, reason)
        table = services.setdefault(target, {})
        for definition in definitions:
            if definition.unknown_keys:
                log.warning("service definition %s: ignored unknown keys %s",
                            definition.source, ", ".join(definition.unknown_keys))
            if definition.key in table:
                log.error("service definition %s skipped: key %r is already defined for %s",
                          definition.source, definition.key, target)
                continue
            table[definition.key] = Service(definition, notifier,
                                            config.empty_array_as_delete_request)
            if table[definition.key].writes_outfile:
                for name in remove_stale_temps(definition.outfile):
                    log.info("service %s: removed %s, left by a run killed while writing "
                             "the outfile", definition.key, name)
        log.info("%s: %d services from %s", target, len(table), directory)
    return services


class Applier:
    def __init__(self, context: RoleContext):
        self.context = context
        self.config = context.config
        self.loop = context.loop
        self.mailbox = context.mailbox
        self.spawner = Spawner(self.loop)
        self.services = load_services(self.config, Notifier(self.spawner))
        self.subscriptions = Subscriptions(self.config.subscribe_write,
                                           self.config.subscribe_exec, self.loop, self.spawner)
        self.tunnels = Tunnels(self.config, self.loop)
        default_commands = dict(self.config.defaultshadow)
        self.link_up = False
        self.syncs: Dict[ThingShadow, ShadowSync] = {}
        deadlines = from_environment(os.environ)  # the defaults, unless a test shortens them
        for target in self.config.shadow_targets():
            command = default_commands.get(target)
            self.syncs[target] = ShadowSync(
                target, self.services.get(target, {}), self.loop,
                send=lambda action, payload, t=target: self._send(t, action, payload),
                finish=self._finish, token_prefix=self.config.clientid[:40],
                default_shadow=DefaultShadow(self.spawner, target, command) if command else None,
                timed_out=lambda what: self.mailbox.send(LINK, RequestTimeout(what=what)),
                request_timeout=deadlines.request)

    def _send(self, target: ThingShadow, action: str, payload: bytes) -> None:
        self.mailbox.send(LINK, ShadowRequest(thing=target.thing, shadow=target.shadow,
                                              action=action, payload=payload))

    def _finish(self, request: Tuple[str, int], reason: Optional[str]) -> None:
        sender, request_id = request
        if reason is None:
            self.mailbox.send(sender, Applied(id=request_id))
        else:
            self.mailbox.send(sender, Rejected(id=request_id, reason=reason))

    # -- messages -----------------------------------------------------------------------
    def on_link_state(self, sender: str, state: LinkState) -> None:
        if state.up == self.link_up:
            return
        self.link_up = state.up
        for sync in self.syncs.values():
            sync.link_up() if state.up else sync.link_down()

    def on_shadow_response(self, sender: str, response: ShadowResponse) -> None:
        sync = self.syncs.get(ThingShadow(response.thing, response.shadow))
        if sync is None:
            return
        try:
            # A shadow document wraps the values ENVELOPE_DEPTH levels deep; anything
            # deeper is hostile and ignored before any code walks it.
            document = load_json(response.payload, envelope=ENVELOPE_DEPTH)
        except FormatError as error:
            log.warning("%s: ignored a shadow %s/%s message: %s", sync, response.action,
                        response.status, error)
            return
        if not isinstance(document, dict):
            log.warning("%s: ignored a shadow %s/%s message that is not an object", sync,
                        response.action, response.status)
            return
        if has_null_in_array(document.get("state")):  # no shadow can hold one
            log.warning("%s: ignored a shadow %s/%s message with a null in an array", sync,
                        response.action, response.status)
            return
        handler = {
            ("get", "accepted"): sync.on_get_accepted,
            ("get", "rejected"): sync.on_get_rejected,
            ("update", "accepted"): sync.on_update_accepted,
            ("update", "rejected"): sync.on_update_rejected,
            ("update", "delta"): sync.on_delta,
        }.get((response.action, response.status))
        if handler is None:
            return
        if response.action == "get" and (sync.get_token is None
                                         or document.get("clientToken") != sync.get_token):
            return  # no get of ours is out, or another client's (responses reach everyone)
        handler(document)

    def on_message(self, sender: str, message: Message) -> None:
        handled = self.tunnels.on_message(message.topic, message.payload)
        if not self.subscriptions.deliver(message.topic, message.payload) and not handled:
            log.debug("no subscription for a message on %s", message.topic)

    def on_local_update(self, sender: str, update: LocalUpdate) -> None:
        request = (sender, update.id)
        target = ThingShadow(update.thing, update.shadow)
        sync = self.syncs.get(target)
        if sync is None:
            self._finish(request, f"no shadow {target} is configured")
            return
        service = sync.services.get(update.key)
        informat = service.definition.informat if service is not None else "JSON"
        try:
            value = formats.get(informat).parse(update.data.decode("utf-8"))
        except UnicodeDecodeError:
            self._finish(request, "not UTF-8 text")
            return
        except FormatError as error:
            self._finish(request, f"not valid {informat}: {error}")
            return
        log.info("%s: local update of %s", sync, update.key)
        sync.local_update(request, update.key, value, self.config.empty_array_as_delete_request)

    def on_command(self, sender: str, command: Command) -> None:
        if command.name == "refetch":
            log.info("refetch requested")
            self.refetch()
            self._finish((sender, command.id), None)
        elif command.name in ("open-tunnel", "close-tunnel"):
            self._finish((sender, command.id), self.tunnels.command(command.name, command.data))
        else:
            self._finish((sender, command.id), f"unknown command {command.name!r}")

    def handlers(self):
        """The applier's dispatch table: message kind -> handler."""
        return {LinkState: self.on_link_state, ShadowResponse: self.on_shadow_response,
                LocalUpdate: self.on_local_update, Command: self.on_command,
                Message: self.on_message}

    def refetch(self) -> None:
        if not self.link_up:
            log.info("the link is down; the shadows are fetched when it comes up")
            return
        for sync in self.syncs.values():
            sync.fetch()


def run(context: RoleContext) -> int:
    applier = Applier(context)
    mailbox = context.mailbox
    context.loop.on_signal(signal.SIGHUP, applier.refetch)
    AfterBursts(context.loop, lambda: mailbox.received)  # a flood's memory goes back
    handlers = applier.handlers()
    context.loop.add_reader(mailbox.socket, lambda: mailbox.dispatch(handlers))
    try:
        return context.loop.run()
    finally:
        applier.spawner.kill_all()
        applier.subscriptions.close()
        applier.tunnels.stop_all()
