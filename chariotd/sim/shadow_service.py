"""The cloud's Device Shadow service as a pure function (IOT_CORE.md §2).

``handle(record, request, payload, now, options)`` takes the stored document, the
request and the time and returns the new stored document and the (topic, payload)
pairs to publish. No I/O here; the MQTT plumbing is in service.py, storage in store.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from chariotd.shadow.merge import merge_state
from chariotd.sim.shadow.delta import delta
from chariotd.sim.shadow.meta import carry_state, select, stamp
from chariotd.sim.shadow.request import (NO_SHADOW, TOO_LARGE, VERSION_CONFLICT, ShadowError,
                                         parse_token, parse_update)
from chariotd.sim.topics import ShadowRequest

Response = Tuple[str, dict]

VERSION_KEPT_FOR = 48 * 3600


@dataclass(frozen=True)
class ShadowOptions:
    """Switches for behaviour that AWS leaves open or that tests want to vary."""

    max_depth: int = 6              # §2.7: 6 by the error text; some sources say 8
    max_state_bytes: int = 8192     # §2.7: desired + reported, metadata not counted
    # §2.4.9: publish update/delta only when the delta changed (False: after every
    # accepted update whose resulting delta is non-empty, as Greengrass does).
    delta_on_change_only: bool = False


@dataclass(frozen=True)
class ShadowRecord:
    """One stored shadow. A deleted shadow keeps its version (EXISTS false, DELETED_AT set)."""

    state: dict = field(default_factory=dict)       # {"desired": {...}, "reported": {...}}
    metadata: dict = field(default_factory=dict)    # same shape, leaves {"timestamp": t}
    version: int = 0
    exists: bool = True
    deleted_at: Optional[int] = None

    def to_json(self) -> dict:
        return {"state": self.state, "metadata": self.metadata, "version": self.version,
                "exists": self.exists, "deleted_at": self.deleted_at}

    @classmethod
    def from_json(cls, doc: dict) -> "ShadowRecord":
        return cls(doc.get("state", {}), doc.get("metadata", {}), doc.get("version", 0),
                   doc.get("exists", True), doc.get("deleted_at"))

    def document(self) -> dict:
        """{state, metadata, version} as update/documents shows it."""
        return {"state": self.state, "metadata": self.metadata, "version": self.version}

    def delta(self) -> dict:
        return delta(self.state.get("desired"), self.state.get("reported"))


def current_version(record: Optional[ShadowRecord], now: int) -> int:
    """The version the next update builds on: kept across a delete for 48 hours."""
    if record is None:
        return 0
    if not record.exists and record.deleted_at is not None \
            and now - record.deleted_at >= VERSION_KEPT_FOR:
        return 0
    return record.version


def state_size(state: dict) -> int:
    return sum(len(json.dumps(state[s], separators=(",", ":"), ensure_ascii=False).encode())
               for s in ("desired", "reported") if s in state)


def _with_token(doc: dict, token: Optional[str]) -> dict:
    if token is not None:
        doc["clientToken"] = token
    return doc


def handle(record: Optional[ShadowRecord], request: ShadowRequest, payload: bytes, now: int,
           options: ShadowOptions = ShadowOptions()
           ) -> Tuple[Optional[ShadowRecord], List[Response]]:
    """Answer one request. Returns (new record, responses); the record is unchanged on error."""
    try:
        if request.op == "get":
            return record, [_get(record, request, payload, now)]
        if request.op == "delete":
            return _delete(record, request, payload, now)
        return _update(record, request, payload, now, options)
    except ShadowError as error:
        return record, [(request.response("rejected"), rejection(error, now))]


def rejection(error: ShadowError, now: int) -> dict:
    """The */rejected document. AWS's 404 has no timestamp (the captured one is
    {"code","message","clientToken"}, IOT_CORE.md §2.3); the documented error format
    (§2.6) keeps it for the others."""
    return error.payload(None if error.code == 404 else now)


def _not_found(request: ShadowRequest, token: Optional[str]) -> ShadowError:
    name = request.shadow if request.shadow else request.thing
    return ShadowError(404, NO_SHADOW.format(name=name), token)


def _get(record, request, payload, now) -> Response:
    token = parse_token(payload)
    if record is None or not record.exists:
        raise _not_found(request, token)
    state = dict(record.state)
    pending = record.delta()
    if pending:
        state["delta"] = pending
    doc = {"state": state, "metadata": record.metadata, "version": record.version,
           "timestamp": now}
    return request.response("accepted"), _with_token(doc, token)


def _delete(record, request, payload, now):
    token = parse_token(payload)
    if record is None or not record.exists:
        raise _not_found(request, token)
    gone = ShadowRecord({}, {}, record.version, exists=False, deleted_at=now)
    doc = {"version": record.version, "timestamp": now}
    return gone, [(request.response("accepted"), _with_token(doc, token))]


def _update(record, request, payload, now, options):
    update = parse_update(payload, options.max_depth)
    token = update.client_token
    version = current_version(record, now)
    if update.version is not None and update.version != version:
        raise ShadowError(409, VERSION_CONFLICT, token)
    existed = record is not None and record.exists
    old = record if existed else ShadowRecord(version=version)

    if update.state is None:
        new_state, new_meta = {}, {}
    else:
        new_state = merge_state(old.state, update.state)
        new_meta = carry_state(old.state, old.metadata, update.state, new_state, now)
    if state_size(new_state) > options.max_state_bytes:
        raise ShadowError(413, TOO_LARGE, token)
    new = ShadowRecord(new_state, new_meta, version + 1)

    echo_state = update.state
    accepted = {"state": echo_state,
                "metadata": stamp(echo_state, now) if echo_state is not None else {},
                "version": new.version, "timestamp": now}
    responses = [(request.response("accepted"), _with_token(accepted, token))]

    new_delta = new.delta()
    if new_delta and not (options.delta_on_change_only and existed
                          and new_delta == old.delta()):
        doc = {"state": new_delta,
               "metadata": select(new_meta.get("desired", {}), new_delta),
               "version": new.version, "timestamp": now}
        responses.append((request.response("delta"), _with_token(doc, token)))

    documents = {"current": new.document(), "timestamp": now}
    if existed:
        documents = {"previous": old.document(), **documents}
    responses.append((request.response("documents"), _with_token(documents, token)))
    return new, responses

