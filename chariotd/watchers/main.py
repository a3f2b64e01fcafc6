"""Entry points of the watcher roles."""

from __future__ import annotations

from chariotd.ipc.messages import LinkState, Published, PublishFailed
from chariotd.runtime import RoleContext
from chariotd.watchers.actiondir import ActionDir
from chariotd.watchers.messages import MessagesHandler


def run_messages(context: RoleContext) -> int:
    options = context.role.options
    actiondir = ActionDir(options.path, options.keep_failed)
    handler = MessagesHandler(context, options, actiondir)
    loop, mailbox = context.loop, context.mailbox
    loop.add_reader(actiondir.fileno(), handler.on_inotify)
    loop.add_reader(mailbox.socket, lambda: mailbox.dispatch({
        LinkState: handler.on_link_state,
        Published: handler.on_published,
        PublishFailed: handler.on_publish_failed,
    }))
    actiondir.prune_failed()
    handler.rescan()
    try:
        return loop.run()
    finally:
        handler.close()
        actiondir.close()
