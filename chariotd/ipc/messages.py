"""Every message kind that crosses a process boundary, defined once.

A frame is one msgpack map: `op`, `from` (the sender's role id, where replies go)
and the fields of the kind. Payloads stay bytes (msgpack bin). `decode` checks the
op, every field's presence and type, and refuses unknown fields, so no raw dict
ever crosses the boundary.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import msgpack

from chariotd.kernel.record import Record


class BadFrame(ValueError):
    """A frame that is not one of our messages (logged and dropped by the receiver)."""


def _is(kind: type) -> Callable[[Any], bool]:
    if kind is bool:
        return lambda value: value.__class__ is bool
    if kind is int:  # bool is an int to Python, never to a frame
        return lambda value: isinstance(value, int) and value.__class__ is not bool
    if kind is float:
        return lambda value: isinstance(value, (int, float)) and value.__class__ is not bool
    return lambda value: isinstance(value, kind)


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
    if origin in (dict, Dict):
        return lambda value: isinstance(value, dict)
    if origin in (list, List):
        item = getattr(expected, "__args__", (Any,))[0]
        check_item = checker(item)
        # msgpack and our own code give exact types: one pass in C over the list's
        # element types, the per-element check only when that is not conclusive.
        exact = {item} if isinstance(item, type) and item is not float else set()
        return lambda value: isinstance(value, list) and (
            set(map(type, value)) <= exact or all(map(check_item, value)))
    return _is(expected)


KINDS: Dict[str, type] = {}


class _Kind(Record, frozen=True):
    """What every message kind shares: fields in declared order, immutable, compared
    and shown field by field (chariotd/kernel/record.py)."""


def _kind(op: str):
    def register(cls):
        annotations = cls.__dict__.get("__annotations__", {})
        cls.op = op
        assert not {"op", "from"} & set(cls.field_names), "op and from name the frame"
        cls.required = frozenset(cls.field_names) - cls.field_defaults.keys()
        cls.field_types = dict(annotations)
        cls.field_set = frozenset(cls.field_names)
        cls.field_checks = tuple((name, checker(kind)) for name, kind in annotations.items())
        KINDS[op] = cls
        return cls
    return register


# -- messages publishing: watcher <-> link ---------------------------------------------

@_kind("publish")
class Publish(_Kind):
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
class Published(_Kind):
    """link -> watcher: the broker acknowledged these (QoS 1) or they were written
    (QoS 0); one frame per pass of the link's loop."""
    ids: List[int]


@_kind("publish_failed")
class PublishFailed(_Kind):
    """link -> watcher: not published. `charge` says whether it counts as a failed attempt
    (False when the link was simply down: the message is retried without penalty)."""
    id: int
    reason: str
    charge: bool


# -- link state: link -> everyone --------------------------------------------------------

@_kind("link_state")
class LinkState(_Kind):
    """link -> all roles: the connection to the broker went up or down."""
    up: bool
    client_id: str = ""


@_kind("link_heartbeat")
class LinkHeartbeat(_Kind):
    """link -> parent, every WatchdogSec/4 under a systemd watchdog: the link's loop is
    turning. The parent pings systemd's watchdog only on a healthy heartbeat."""
    up: bool
    healthy: bool


# -- device shadow: applier <-> link ------------------------------------------------------

@_kind("shadow_request")
class ShadowRequest(_Kind):
    """applier -> link: publish PAYLOAD (JSON text the applier built) to the shadow's
    ACTION topic (`get`, `update` or `delete`); SHADOW is None for the classic shadow."""
    thing: str
    shadow: Optional[str]
    action: str
    payload: bytes


@_kind("request_timeout")
class RequestTimeout(_Kind):
    """applier -> link: a request (WHAT, e.g. "the shadow get of dev1") got no answer in
    time; it counts as a connection failure (more than 5 in a row: rotate and exit)."""
    what: str


@_kind("shadow_response")
class ShadowResponse(_Kind):
    """link -> applier: a message on one of a shadow's response topics, e.g. ACTION
    `get` with STATUS `accepted`, or ACTION `update` with STATUS `delta`."""
    thing: str
    shadow: Optional[str]
    action: str
    status: str
    payload: bytes


# -- subscriptions and tunnel notifications: link -> applier ------------------------------

@_kind("message")
class Message(_Kind):
    """link -> applier: a message on TOPIC that matches a --subscribe-write or
    --subscribe-exec filter, or a mapped thing's tunnel notify topic."""
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
class LocalUpdate(_Kind):
    """updates watcher -> applier: the file for shadow KEY (its raw content); answered
    by applied or rejected once the request is finished."""
    id: int
    thing: str
    shadow: Optional[str]
    key: str
    data: bytes


@_kind("command")
class Command(_Kind):
    """commands watcher -> the owning role: command NAME with the file's content."""
    id: int
    name: str
    data: bytes


@_kind("applied")
class Applied(_Kind):
    """owner -> watcher: request ID is finished; its file may leave new/."""
    id: int


@_kind("rejected")
class Rejected(_Kind):
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
    for name in message.field_names:
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
