"""Entry points of the watcher roles."""

from __future__ import annotations

import os

from chariotd.kernel.backoff import Backoff
from chariotd.kernel.runtime import RoleContext
from chariotd.watchers.actiondir import ActionDir
from chariotd.watchers.messages import MessagesHandler
from chariotd.watchers.requests import (RequestsHandler, command_owners, command_route,
                                        update_route)

REQUESTS_KEEP_FAILED = 100


def run_messages(context: RoleContext) -> int:
    options = context.role.options
    actiondir = ActionDir(options.path, options.keep_failed)
    handler = MessagesHandler(context, options, actiondir,
                              Backoff.from_environment(os.environ))  # the test seam
    loop, mailbox = context.loop, context.mailbox
    loop.add_reader(actiondir.fileno(), handler.on_inotify)
    handlers = handler.handlers()
    loop.add_reader(mailbox.socket, lambda: mailbox.dispatch(handlers))
    actiondir.prune_failed()
    handler.rescan()
    try:
        return loop.run()
    finally:
        handler.close()
        actiondir.close()


def _run_requests(context: RoleContext, path: str, route) -> int:
    actiondir = ActionDir(path, REQUESTS_KEEP_FAILED)
    handler = RequestsHandler(context, actiondir, route)
    loop, mailbox = context.loop, context.mailbox
    loop.add_reader(actiondir.fileno(), handler.on_inotify)
    handlers = handler.handlers()
    loop.add_reader(mailbox.socket, lambda: mailbox.dispatch(handlers))
    actiondir.prune_failed()
    handler.rescan()
    try:
        return loop.run()
    finally:
        actiondir.close()


def run_updates(context: RoleContext) -> int:
    target, path = context.role.options
    return _run_requests(context, path, update_route(target.thing, target.shadow))


def run_commands(context: RoleContext) -> int:
    owners = command_owners(context.config)
    return _run_requests(context, context.role.options,
                         lambda name, data, request_id: command_route(name, data, request_id,
                                                                      owners))
