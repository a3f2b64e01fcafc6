"""Keeping one device shadow (classic or named) and its services in step.

States (one transition function, `_enter`):
    OFFLINE   the link is down; local updates are applied and their reports queued
    FETCHING  a get is out (or waits for a retry)
    READY     the shadow was fetched; deltas are applied as they come

Reported updates go out one at a time: while one is in flight, the next ones are
combined into pending updates (a single one unless a combination would change
what they mean). An update is answered by accepted (the
request files it carries are finished), rejected (retried; a 409 refetches) or no
answer within the request deadline (resent).

Deadlines: a get or an update unanswered within `request_timeout` seconds
(kernel/mqtt/deadlines.py, default 10 s) is logged, reported to the link as a failure
(more than 5 in a row end the tree, as connection failures do) and sent again; a
broker that swallows every request therefore never leaves a shadow waiting silently.
"""

from __future__ import annotations

import itertools
import json
import logging
import reprlib
from typing import Any, Callable, Dict, List, Optional

from chariotd.kernel.mqtt.deadlines import Deadlines
from chariotd.config import ThingShadow
from chariotd.services.reconcile import ChangeRefused
from chariotd.shadow.patch import NO_CHANGE, apply, combine, normalise

log = logging.getLogger(__name__)

OFFLINE, FETCHING, READY = "offline", "fetching", "ready"

REQUEST_TIMEOUT = Deadlines().request  # seconds; the default of `request_timeout`
GET_RETRY = 5.0
UPDATE_RETRY = 3.0

_tokens = itertools.count(1)
MAX_VERSION = 2 ** 63  # AWS shadow versions are 64-bit; anything beyond is not a version


def _valid_version(version) -> bool:
    return isinstance(version, int) and not isinstance(version, bool) and (
        0 <= version < MAX_VERSION)


class PendingUpdate:
    __slots__ = ("state", "request_ids", "token")

    def __init__(self, state: dict, request_ids: List[int]):
        self.state = state
        self.request_ids = request_ids
        self.token: Optional[str] = None

    def absorb(self, other: "PendingUpdate") -> bool:
        """Fold OTHER into this update; False when one update cannot say both."""
        state = combine(self.state, other.state)
        if state is NO_CHANGE:
            return False
        self.state = state
        self.request_ids += other.request_ids
        return True


class ShadowSync:
    def __init__(self, target: ThingShadow, services, loop, send: Callable[[str, bytes], None],
                 finish: Callable[[int, Optional[str]], None], token_prefix: str,
                 default_shadow: Optional[Callable[[Callable[[Any], None]], None]] = None,
                 timed_out: Callable[[str], None] = lambda what: None,
                 request_timeout: float = REQUEST_TIMEOUT):
        """SERVICES: the applier's Services for this shadow (may be empty); SEND(op,
        payload) publishes a request; FINISH(request_id, reason or None) answers a
        request file; DEFAULT_SHADOW(callback) produces the seed for a missing shadow;
        REQUEST_TIMEOUT: seconds a get or update waits for its answer."""
        self.request_timeout = request_timeout
        self.target = target
        self.services = services
        self.loop = loop
        self.send = send
        self.finish = finish
        self.token_prefix = token_prefix
        self.default_shadow = default_shadow
        self.timed_out = timed_out  # tells the link: request timeouts count as failures
        self.state = OFFLINE
        self.reported: Dict[str, Any] = {}
        self.fetched = False  # self.reported is the shadow's (else a placeholder)
        self.version = 0
        self.get_token: Optional[str] = None
        self.inflight: Optional[PendingUpdate] = None
        self.pending: List[PendingUpdate] = []
        self.timer = None

    def __str__(self) -> str:
        return str(self.target)

    def _enter(self, state: str) -> None:
        self.state = state
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _token(self, kind: str) -> str:
        return f"{self.token_prefix}-{kind}-{next(_tokens)}"

    def _heard(self, what: str, document: dict) -> None:
        """A debug line per shadow response: its kind, version and token (shortened:
        they come from the cloud), never its state."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: shadow %s (version %s, token %s)", self, what,
                      reprlib.repr(document.get("version")),
                      reprlib.repr(document.get("clientToken")))

    # -- link ------------------------------------------------------------------------
    def link_up(self) -> None:
        self.fetch()

    def link_down(self) -> None:
        self._enter(OFFLINE)
        self.get_token = None
        if self.inflight is not None:  # unanswered: send it again after the fetch
            self.pending.insert(0, self.inflight)
            self.inflight = None

    # -- fetching ----------------------------------------------------------------------
    def fetch(self) -> None:
        self._enter(FETCHING)
        self.get_token = self._token("get")
        log.debug("%s: shadow get request (token %s)", self, self.get_token)
        self.send("get", json.dumps({"clientToken": self.get_token}).encode())
        self.timer = self.loop.call_later(self.request_timeout, self._get_timeout)

    def _get_timeout(self) -> None:
        log.warning("%s: no answer to the shadow get within %g s; asking again", self,
                    self.request_timeout)
        self.timed_out(f"the shadow get of {self}")
        self.fetch()

    def _retry_fetch(self, delay: float) -> None:
        self._enter(FETCHING)
        self.get_token = None
        self.timer = self.loop.call_later(delay, self.fetch)

    def on_get_accepted(self, document: dict) -> None:
        self._heard("get accepted", document)
        self._enter(READY)
        self.get_token = None
        state = document.get("state") if isinstance(document.get("state"), dict) else {}
        desired = state.get("desired") if isinstance(state.get("desired"), dict) else {}
        reported = state.get("reported") if isinstance(state.get("reported"), dict) else {}
        self.reported = reported
        self.fetched = True
        # A fetched document is the truth: its version replaces ours even when lower
        # (a shadow deleted and recreated starts again), so one bogus high version in
        # a delta never makes later deltas look old past the next fetch.
        if _valid_version(document.get("version")):
            self.version = document["version"]
        log.info("%s: shadow fetched (version %s)", self, document.get("version"))
        update: dict = {}
        for key, service in self.services.items():
            self._apply(update, service, key, desired.get(key, NO_CHANGE),
                        cleared=key in desired)
        self._queue(update, [])
        self._flush()

    def on_get_rejected(self, document: dict) -> None:
        self._heard("get rejected", document)
        code = document.get("code")
        if code == 404:
            log.info("%s: no shadow yet; creating it", self)
            self.get_token = None
            self._enter(FETCHING)
            if self.default_shadow is not None:
                self.default_shadow(self._create)
            else:
                self._create({})
            return
        log.warning("%s: shadow get rejected (%s %s); retrying in %g s", self, code,
                    document.get("message"), GET_RETRY)
        self._retry_fetch(GET_RETRY)

    def _create(self, seed: Any) -> None:
        if self.state != FETCHING:
            return  # the link went down meanwhile; the next fetch starts over
        seed = seed if isinstance(seed, dict) else {}
        self.reported = {}
        self.fetched = True
        self.version = 0
        update = {"reported": {key: value for key, value in seed.items()
                               if key not in self.services}}
        for key, service in self.services.items():
            self._apply(update, service, key, seed.get(key, NO_CHANGE), cleared=False,
                        replace=key in seed)
        self._enter(READY)
        log.info("%s: shadow created", self)
        self._queue(update, [])
        self._flush()

    # -- deltas and local updates -----------------------------------------------------------
    def on_delta(self, document: dict) -> None:
        self._heard("delta", document)
        if self.state != READY:
            return
        delta = document.get("state")
        if not isinstance(delta, dict):  # checked first: a bad delta's version means nothing
            log.warning("%s: ignored a delta without a state object", self)
            return
        if not self._note_version(document):
            return
        update: dict = {}
        for key, patch in delta.items():
            service = self.services.get(key)
            if service is not None:
                self._apply(update, service, key, patch, cleared=True)
        self._queue(update, [])
        self._flush()

    def local_update(self, request_id: int, key: str, value: Any,
                     empty_array_deletes: bool = False) -> None:
        """Apply a request file's VALUE to KEY (through its service when there is one)
        and report it; the request is finished once the shadow accepted the report."""
        service = self.services.get(key)
        update: Dict[str, Any] = {}
        if service is None:
            self._report(update, key, normalise(value, empty_array_deletes))
        else:
            try:
                self._report(update, key, service.apply(self.reported.get(key), value,
                                                        known=self.fetched))
            except ChangeRefused as error:
                self.finish(request_id, str(error))
                return
        if not update:
            self.finish(request_id, None)  # nothing to report: done
            return
        self._queue(update, [request_id])
        self._flush()

    def _apply(self, update: dict, service, key: str, patch: Any, cleared: bool,
               replace: bool = False) -> None:
        """Apply PATCH to SERVICE and add what is to be reported to UPDATE. A consumed
        desired value is cleared even when the change is refused (it is logged)."""
        try:
            self._report(update, key, service.apply(self.reported.get(key), patch,
                                                    replace=replace))
        except ChangeRefused as error:
            log.error("%s: change to %s refused: %s", self, key, error)
        if cleared:
            update.setdefault("desired", {})[key] = None

    def _report(self, update: dict, key: str, patch: Any) -> None:
        if patch is not NO_CHANGE:
            update.setdefault("reported", {})[key] = patch
            self.reported[key] = apply(self.reported.get(key), patch)

    def _note_version(self, document: dict) -> bool:
        """False for a message older than one already seen (AWS may reorder them)."""
        version = document.get("version")
        if _valid_version(version):
            if version < self.version:
                return False
            self.version = version
        return True

    # -- reported updates ---------------------------------------------------------------------
    def _queue(self, state: dict, request_ids: List[int]) -> None:
        if not state and not request_ids:
            return
        update = PendingUpdate(state, request_ids)
        if not self.pending or not self.pending[-1].absorb(update):
            self.pending.append(update)

    def _flush(self) -> None:
        if self.state != READY or self.inflight is not None or not self.pending:
            return
        self.inflight = self.pending.pop(0)
        self._send_update()

    def _send_update(self) -> None:
        update = self.inflight
        update.token = self._token("update")
        log.debug("%s: shadow update request (token %s, %d local requests)", self,
                  update.token, len(update.request_ids))
        self.send("update", json.dumps({"state": update.state, "clientToken": update.token},
                                       separators=(",", ":")).encode())
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(self.request_timeout, self._update_timeout)

    def _update_timeout(self) -> None:
        self.timer = None
        if self.inflight is not None and self.state == READY:
            log.warning("%s: no answer to the shadow update within %g s; sending it again",
                        self, self.request_timeout)
            self.timed_out(f"the shadow update of {self}")
            self._send_update()

    def on_update_accepted(self, document: dict) -> None:
        self._heard("update accepted", document)
        update = self.inflight
        if update is None or document.get("clientToken") != update.token:
            return
        self._note_version(document)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.inflight = None
        for request_id in update.request_ids:
            self.finish(request_id, None)
        self._flush()

    def on_update_rejected(self, document: dict) -> None:
        self._heard("update rejected", document)
        update = self.inflight
        if update is None or document.get("clientToken") != update.token:
            return
        code, message = document.get("code"), document.get("message")
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if code == 409:
            log.warning("%s: version conflict; fetching the shadow again", self)
            self.link_down()
            self.fetch()
            return
        if code == 400 or code == 413:
            # The cloud will never take this update: retrying would loop forever.
            log.error("%s: shadow update rejected (%s %s); dropped", self, code, message)
            self.inflight = None
            for request_id in update.request_ids:
                self.finish(request_id, f"the shadow refused the update: {code} {message}")
            self._flush()
            return
        log.warning("%s: shadow update rejected (%s %s); retrying in %g s", self, code,
                    message, UPDATE_RETRY)
        self.timer = self.loop.call_later(UPDATE_RETRY, self._send_update)
