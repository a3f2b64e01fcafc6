"""The jobs role, `chariotd: jobs THING...` (only with --jobs): one process for every
--jobs thing, each thing's executions carried out by its own ThingWorker (thing.py).

Talks to the link only: requests go out as QoS 1 `publish` frames (window 1: the
machine has one request in flight per thing); `publish_failed` hands the request back
to its thing's machine (sent again after a backoff); `published` says nothing the
machine needs (its reply comes on a reply topic). The link hands over every message on
a `$aws/things/THING/jobs/...` topic as `message`, and `link_state` tells each worker
that the link went up (start-next, or the pending update) or down.

At start each worker recovers what a crash or reboot left (a final result written by
the handler is sent, else FAILED "interrupted"; a leftover handler group of this boot
is killed); at exit (SIGTERM) a running handler's group gets SIGTERM, then SIGKILL. The
supervisor SIGKILLs a role about 1 s after SIGTERM, so a handler slow to exit may
outlive the role: the next start's recovery kills it.
"""

from __future__ import annotations

import itertools
import logging
from typing import Dict

from chariotd.aws.jobs_topics import thing_of
from chariotd.config import JobsConfig
from chariotd.ipc.messages import LinkState, Message, Publish, Published, PublishFailed
from chariotd.jobs.machine import ThingJobs
from chariotd.jobs.state import ExecutionState
from chariotd.jobs.thing import ThingWorker
from chariotd.kernel.runtime import LINK, RoleContext

log = logging.getLogger(__name__)


class Jobs:
    def __init__(self, context: RoleContext, workers: Dict[str, ThingWorker] = None):
        self.context = context
        self.mailbox = context.mailbox
        self.request_ids = itertools.count(1)
        self.pending: Dict[int, str] = {}  # request id at the link -> its thing
        self.workers: Dict[str, ThingWorker] = {} if workers is None else workers

    def add(self, thing: str, handler_dir: str, options: JobsConfig) -> ThingWorker:
        state = ExecutionState(options.state_of(handler_dir), thing)
        worker = ThingWorker(self.context.loop, thing, handler_dir, state,
                             ThingJobs(thing, options.timeout),
                             lambda topic, payload: self.publish(thing, topic, payload),
                             allow_commands=options.allow_commands)
        self.workers[thing] = worker
        return worker

    def handlers(self):
        """The jobs role's dispatch table: each message kind it receives -> its handler."""
        return {LinkState: self.on_link_state, Message: self.on_message,
                Published: self.on_published, PublishFailed: self.on_publish_failed}

    # -- out ---------------------------------------------------------------------------
    def publish(self, thing: str, topic: str, payload: bytes) -> None:
        request_id = next(self.request_ids)
        self.pending[request_id] = thing
        self.mailbox.send(LINK, Publish(ids=[request_id], topics=[topic],
                                        payloads=[payload], qos=[1], window=1))

    # -- in ----------------------------------------------------------------------------
    def on_published(self, sender: str, message: Published) -> None:
        for request_id in message.ids:
            self.pending.pop(request_id, None)

    def on_publish_failed(self, sender: str, message: PublishFailed) -> None:
        thing = self.pending.pop(message.id, None)
        if thing is None:
            return
        log.debug("%s: jobs request %d not published: %s", thing, message.id, message.reason)
        self.workers[thing].publish_failed()

    def on_message(self, sender: str, message: Message) -> None:
        worker = self.workers.get(thing_of(message.topic) or "")
        if worker is None or not worker.message(message.topic, message.payload):
            log.debug("ignored a message on %s", ascii(message.topic[:200]))

    def on_link_state(self, sender: str, message: LinkState) -> None:
        # The link forgets what it had in flight when the connection goes: so do we
        # (each machine asks again after the next connect).
        self.pending.clear()
        for worker in self.workers.values():
            if message.up:
                worker.link_up()
            else:
                worker.link_down()

    # -- start and stop ------------------------------------------------------------------
    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()

    def shutdown(self) -> None:
        for worker in self.workers.values():
            worker.shutdown()


def run(context: RoleContext) -> int:
    options: JobsConfig = context.role.options
    jobs = Jobs(context)
    for thing, handler_dir in options.things:
        jobs.add(thing, handler_dir, options)
    handlers = jobs.handlers()
    context.loop.add_reader(context.mailbox.socket,
                            lambda: context.mailbox.dispatch(handlers))
    jobs.start()
    try:
        return context.loop.run()
    finally:
        jobs.shutdown()
