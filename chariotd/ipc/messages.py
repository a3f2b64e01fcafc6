"""Every message kind that crosses a process boundary, defined once.

A frame is one msgpack map: `op`, `from` (the sender's role id, where replies go)
and the fields of the kind. Payloads stay bytes (msgpack bin). `decode` checks the
op, every field's presence and type, and refuses unknown fields, so no raw dict
ever crosses the boundary.

A kind is a `typing.NamedTuple` registered under its op:

    @_kind("applied")
    class Applied(NamedTuple):
        id: int                 # owner -> watcher: request ID is finished
        reason: str = ""        # a default makes the field optional in a frame

Field types: bool, int, float, str, bytes, Any, Optional/Union of those, List[...] and
Dict[...] (a dict's contents are not checked). `_kind` builds each field's checker
once, from `typing.get_type_hints`, and refuses any other type (TypeError) when the
class is defined. Two messages are equal only when they are of the same kind.
"""

from typing import (Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union,
                    get_type_hints)

import msgpack


class BadFrame(ValueError):
    """A frame that is not one of our messages (logged and dropped by the receiver)."""


def _is(kind: type) -> Callable[[Any], bool]:
    if kind is bool:
        return lambda value: value.__class__ is bool
    if kind is int:  # bool is an int to Python, never to a frame
        return lambda value: isinstance(value, int) and value.__class__ is not bool
    if kind is float:
        return lambda value: isinstance(value, (int, float)) and value.__class__ is not bool
    if kind in (str, bytes, dict, list):
        return lambda value: isinstance(value, kind)
    raise TypeError(f"a message field cannot have the type {kind!r}")


def checker(expected: Any) -> Callable[[Any], bool]:
    """A function telling whether a value has the declared type EXPECTED (built once
    per field when a kind is defined, so a frame is checked without walking typing
    annotations)."""
    origin = getattr(expected, "__origin__", None)
    if expected is Any:
        return lambda value: True
    if expected is type(None):
        return lambda value: value is None
    if origin is Union:
        options = [checker(option) for option in expected.__args__]
        return lambda value: any(check(value) for check in options)
    if origin is dict:
        return lambda value: isinstance(value, dict)
    if origin is list:
        item = getattr(expected, "__args__", (Any,))[0]
        check_item = checker(item)
        # msgpack and our own code give exact types: one pass in C over the list's
        # element types, the per-element check only when that is not conclusive.
        exact = {item} if isinstance(item, type) and item is not float else set()
        return lambda value: isinstance(value, list) and (
            set(map(type, value)) <= exact or all(map(check_item, value)))
    if isinstance(expected, type):
        return _is(expected)
    raise TypeError(f"a message field cannot have the type {expected!r}")


KINDS: Dict[str, type] = {}


def _same_kind_equal(self, other) -> bool:
    return type(other) is type(self) and tuple.__eq__(self, other)


def _same_kind_unequal(self, other) -> bool:
    return not _same_kind_equal(self, other)


def _kind(op: str):
    """Register the NamedTuple class CLS as the kind of op OP (see the module's text);
    TypeError for anything else, a field type no frame can carry, or an op taken."""
    def register(cls):
        if not (issubclass(cls, tuple) and hasattr(cls, "_fields")):
            raise TypeError(f"{cls.__name__}: a message kind is a typing.NamedTuple")
        if op in KINDS or {"op", "from"} & set(cls._fields):
            raise TypeError(f"{cls.__name__}: op {op!r} is taken, or a field is named "
                            f"op or from (they name the frame)")
        hints = get_type_hints(cls)  # also resolves annotations written as strings
        cls.op = op
        cls.required = frozenset(cls._fields) - cls._field_defaults.keys()
        cls.field_set = frozenset(cls._fields)
        cls.field_checks = tuple((name, checker(hints[name])) for name in cls._fields)
        # A tuple equals any tuple of the same values; a message only its own kind.
        cls.__eq__, cls.__ne__ = _same_kind_equal, _same_kind_unequal
        cls.__hash__ = tuple.__hash__
        KINDS[op] = cls
        return cls
    return register


# Kinds declared before NamedTuple (`class X(_Kind)`) still read the same.
_Kind = NamedTuple


# -- messages publishing: watcher <-> link ---------------------------------------------

@_kind("publish")
class Publish(NamedTuple):
    """watcher -> link: publish these messages (parallel lists, one entry per message,
    several per frame when a pass of the watcher's loop releases several); each is
    answered by published or publish_failed. The link keeps at most WINDOW of the
    sender's messages published and unacknowledged; the others wait at the link, in
    order (broker_link/windows.py)."""
    ids: List[int]
    topics: List[str]
    payloads: List[bytes]
    qos: List[int]
    window: int

    def check(self) -> None:
        if not len(self.ids) == len(self.topics) == len(self.payloads) == len(self.qos):
            raise BadFrame("publish: the lists differ in length")
        if any(q not in (0, 1) for q in self.qos):
            raise BadFrame("publish: qos must be 0 or 1")
        if self.window < 1:
            raise BadFrame("publish: window must be at least 1")


@_kind("published")
class Published(NamedTuple):
    """link -> watcher: the broker acknowledged these (QoS 1) or they were written
    (QoS 0); one frame per pass of the link's loop."""
    ids: List[int]


@_kind("publish_failed")
class PublishFailed(NamedTuple):
    """link -> watcher: not published. `charge` says whether it counts as a failed attempt
    (False when the link was simply down: the message is retried without penalty)."""
    id: int
    reason: str
    charge: bool


# -- link state: link -> everyone --------------------------------------------------------

@_kind("link_state")
class LinkState(NamedTuple):
    """link -> all roles: the connection to the broker went up or down."""
    up: bool
    client_id: str = ""


@_kind("link_heartbeat")
class LinkHeartbeat(NamedTuple):
    """link -> parent, every WatchdogSec/4 under a systemd watchdog: the link's loop is
    turning. The parent pings systemd's watchdog only on a healthy heartbeat."""
    up: bool
    healthy: bool


# -- device shadow: applier <-> link ------------------------------------------------------

@_kind("shadow_request")
class ShadowRequest(NamedTuple):
    """applier -> link: publish PAYLOAD (JSON text the applier built) to the shadow's
    ACTION topic (`get`, `update` or `delete`); SHADOW is None for the classic shadow."""
    thing: str
    shadow: Optional[str]
    action: str
    payload: bytes


@_kind("request_timeout")
class RequestTimeout(NamedTuple):
    """applier -> link: a request (WHAT, e.g. "the shadow get of dev1") got no answer in
    time; it counts as a connection failure (more than 5 in a row: rotate and exit)."""
    what: str


@_kind("shadow_response")
class ShadowResponse(NamedTuple):
    """link -> applier: a message on one of a shadow's response topics, e.g. ACTION
    `get` with STATUS `accepted`, or ACTION `update` with STATUS `delta`."""
    thing: str
    shadow: Optional[str]
    action: str
    status: str
    payload: bytes


# -- subscriptions and tunnel notifications: link -> applier ------------------------------

@_kind("message")
class Message(NamedTuple):
    """link -> applier: a message on TOPIC that matches a --subscribe-write or
    --subscribe-exec filter, or a mapped thing's tunnel notify topic; link -> jobs: a
    message on a --jobs thing's $aws/things/THING/jobs/... topic."""
    topic: str
    payload: bytes


# -- Device Defender: link -> defender ------------------------------------------------------

@_kind("defender_reply")
class DefenderReply(_Kind):
    """link -> defender: AWS's answer to one of THING's reports (.../metrics/json/accepted
    or /rejected), read by aws/defender_topics.parse_reply: REPORT_ID is None when the
    reply names none; a rejection's CODE and MESSAGE are short strings (empty if absent).
    The defender role publishes its reports with `publish`."""
    thing: str
    accepted: bool
    report_id: Optional[int]
    code: str
    message: str


# -- action-directory requests: watchers -> the role that owns them ----------------------

@_kind("local_update")
class LocalUpdate(NamedTuple):
    """updates watcher -> applier: the file for shadow KEY (its raw content); answered
    by applied or rejected once the request is finished."""
    id: int
    thing: str
    shadow: Optional[str]
    key: str
    data: bytes


@_kind("command")
class Command(NamedTuple):
    """commands watcher -> the owning role: command NAME with the file's content."""
    id: int
    name: str
    data: bytes


@_kind("applied")
class Applied(NamedTuple):
    """owner -> watcher: request ID is finished; its file may leave new/."""
    id: int


@_kind("rejected")
class Rejected(NamedTuple):
    """owner -> watcher: request ID cannot be done; its file goes to failed/."""
    id: int
    reason: str


def validate(message) -> None:
    """Raise BadFrame unless every field of MESSAGE has its declared type."""
    for name, check in message.field_checks:
        if not check(getattr(message, name)):
            raise BadFrame(f"{message.op}: field {name!r} has type "
                           f"{type(getattr(message, name)).__name__}")
    check = getattr(message, "check", None)
    if check is not None:
        check()


def encode(message, sender: str) -> bytes:
    frame = {"op": message.op, "from": sender}
    for name in message._fields:
        frame[name] = getattr(message, name)
    return msgpack.packb(frame, use_bin_type=True)


def decode(data: bytes) -> Tuple[str, Any]:
    """Return (sender, message) or raise BadFrame."""
    try:
        frame = msgpack.unpackb(data, raw=False)
    except Exception as error:  # msgpack raises several unrelated types
        raise BadFrame(f"not msgpack: {error}") from None
    if not isinstance(frame, dict):
        raise BadFrame("frame is not a map")
    op = frame.pop("op", None)
    sender = frame.pop("from", None)
    kind = KINDS.get(op) if isinstance(op, str) else None
    if kind is None:
        raise BadFrame(f"unknown op {op!r}")
    if not isinstance(sender, str) or not sender:
        raise BadFrame(f"{op}: missing sender")
    keys = frame.keys()
    if not kind.required <= keys <= kind.field_set:
        unknown = keys - kind.field_set
        if unknown:  # keys may be str and bytes: sort by repr
            raise BadFrame(f"{op}: unknown fields {sorted(unknown, key=repr)}")
        raise BadFrame(f"{op}: missing fields {sorted(kind.required - keys)}")
    message = kind(**frame)
    validate(message)
    return sender, message
