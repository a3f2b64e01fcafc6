"""What the link subscribes to on every connection, and where what arrives goes.

Subscriptions are made after each CONNACK (the session is clean); the link counts as
up for the other roles only once every SUBACK is in, so that no request is sent
before its responses can be received.
"""

from __future__ import annotations

import logging
from typing import Dict, List

from chariotd.broker_link.shadow_topics import batches, parse_response_topic, response_filters
from chariotd.config import Config
from chariotd.ipc.messages import DefenderReply, Message, ShadowResponse
from chariotd.kernel.runtime import APPLIER, DEFENDER, JOBS
from chariotd.kernel.topics import covers, matches, without_covered
from chariotd.aws import defender_topics, jobs_topics
from chariotd.aws.tunnel_request import notify_topic

log = logging.getLogger(__name__)


class Router:
    def __init__(self, config: Config, mailbox):
        self.mailbox = mailbox
        self.targets = set(config.shadow_targets())
        # Subscriptions and tunnel notifications go to the applier as `message`.
        self.message_filters: List[str] = [topic for topic, _ in config.subscribe_write
                                           + config.subscribe_exec] + [
            notify_topic(thing) for thing, _ in config.tunnelmappings]
        shadow_filters = [f for target in config.shadow_targets()
                          for f in response_filters(target)]
        # With --defender, the answers to its reports go to the defender role.
        self.defender_thing = config.defender.thing if config.defender else None
        defender_filters = (defender_topics.reply_topics(self.defender_thing)
                            if self.defender_thing else [])
        # With --jobs, notify-next and the replies of each thing go to the jobs role.
        jobs_things = [thing for thing, _ in config.jobs.things] if config.jobs else []
        self.jobs_things = set(jobs_things)
        jobs_filters = [f for thing in jobs_things for f in jobs_topics.subscriptions(thing)]
        self.filters: List[str] = without_covered(
            shadow_filters + self.message_filters + defender_filters + jobs_filters)
        # The filters the shadow responses come through (one may be a message filter
        # that covers them): the link cannot work when one of them is refused.
        self.shadow_filters = {f for f in self.filters
                               if any(covers(f, s) for s in shadow_filters)}
        self.waiting: Dict[int, List[str]] = {}
        self.shadow_refused: List[str] = []  # on this connection

    def subscribe(self, client) -> bool:
        """Subscribe everything; True when there is nothing to wait for."""
        self.waiting.clear()
        self.shadow_refused = []
        for batch in batches(self.filters):
            result, mid = client.subscribe([(topic, 1) for topic in batch])
            if mid is not None:
                self.waiting[mid] = batch
        return not self.waiting

    def subscribed(self, mid: int, reason_codes) -> bool:
        """A SUBACK arrived; True when it was the last one awaited. A refused filter
        (MQTT 3.1.1: 0x80) is logged; a shadow one is kept in `shadow_refused`. A
        SUBACK with fewer codes than filters refuses the ones it leaves out."""
        batch = self.waiting.pop(mid, None)
        if batch is None:
            return False
        codes = list(reason_codes)
        for index, topic in enumerate(batch):
            code = codes[index] if index < len(codes) else None
            if code is None or code.is_failure:
                log.error("subscription to %s refused: %s", topic,
                          code if code is not None else "no reason code")
                if topic in self.shadow_filters:
                    self.shadow_refused.append(topic)
        if not self.waiting and not self.shadow_refused:
            log.info("subscribed to %d topic filters", len(self.filters))
        return not self.waiting

    def route(self, topic: str, payload: bytes) -> None:
        if "\0" in topic:  # MQTT forbids it (MQTT-1.5.3-2); no child or file can take it
            log.warning("dropped a message on a topic holding a NUL: %s", ascii(topic[:200]))
            return
        parsed = parse_response_topic(topic)
        routed = False
        if parsed is not None and parsed[0] in self.targets:
            target, action, status = parsed
            self.mailbox.send(APPLIER, ShadowResponse(
                thing=target.thing, shadow=target.shadow, action=action, status=status,
                payload=payload))
            routed = True
        if any(matches(f, topic) for f in self.message_filters):
            self.mailbox.send(APPLIER, Message(topic=topic, payload=payload))
            routed = True
        if self.defender_thing is not None:
            routed = self._defender_reply(topic, payload) or routed
        if self.jobs_things and jobs_topics.thing_of(topic) in self.jobs_things:
            self.mailbox.send(JOBS, Message(topic=topic, payload=payload))
            routed = True
        if not routed:
            log.debug("ignored a message on %s", topic)

    def _defender_reply(self, topic: str, payload: bytes) -> bool:
        """An answer to one of the defender role's reports goes to it, read; True when
        TOPIC is one of its reply topics."""
        parsed = defender_topics.parse_reply_topic(topic)
        if parsed is None or parsed[0] != self.defender_thing:
            return False
        try:
            reply = defender_topics.parse_reply(parsed[1], payload)
        except ValueError as error:
            log.warning("dropped a Defender reply on %s: %s", ascii(topic), error)
            return True
        self.mailbox.send(DEFENDER, DefenderReply(
            thing=self.defender_thing, accepted=reply.accepted, report_id=reply.report_id,
            code=reply.code, message=reply.message))
        return True
