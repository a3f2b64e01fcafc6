import msgpack
import pytest
from hypothesis import given, strategies as st

from chariotd.ipc.messages import (KINDS, Applied, BadFrame, Command, DefenderReply,
                                   LinkHeartbeat,
                                   LinkState, LocalUpdate, Message, Publish, Published,
                                   PublishFailed, Rejected, RequestTimeout, ShadowRequest,
                                   ShadowResponse, decode, encode)

EXAMPLES = [
    Publish(ids=[1], topics=["a/b"], payloads=[b"\x00\xff"], qos=[1], window=10),
    Publish(ids=[2, 3], topics=["a", "b"], payloads=[b"", b"x"], qos=[0, 1], window=1),
    Published(ids=[7, 8]),
    PublishFailed(id=7, reason="link is down", charge=False),
    LinkState(up=True, client_id="dev1"),
    LinkHeartbeat(up=False, healthy=True),
    ShadowRequest(thing="T", shadow=None, action="get", payload=b'{"clientToken":"x"}'),
    ShadowRequest(thing="T", shadow="cfg", action="update", payload=b"{}"),
    ShadowResponse(thing="T", shadow=None, action="update", status="delta", payload=b"{}"),
    LocalUpdate(id=3, thing="T", shadow=None, key="foo", data=b"{}"),
    Command(id=4, name="refetch", data=b""),
    Applied(id=3),
    RequestTimeout(what="the shadow get of T"),
    Rejected(id=4, reason="unknown command"),
    Message(topic="a/b", payload=b"\x00{}"),
    DefenderReply(thing="T", accepted=True, report_id=1718000000123, code="", message=""),
    DefenderReply(thing="T", accepted=False, report_id=None, code="Throttled",
                  message="one report per 300 s"),
]


def test_every_kind_has_an_example():
    assert {type(m) for m in EXAMPLES} == set(KINDS.values())


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.op)
def test_round_trip(message):
    assert decode(encode(message, "link")) == ("link", message)


def test_payload_stays_bytes_on_the_wire():
    frame = msgpack.unpackb(encode(EXAMPLES[0], "msg0"), raw=True)
    assert frame[b"payloads"] == [b"\x00\xff"]  # msgpack bin, not base64 or str
    assert frame[b"op"] == b"publish" and frame[b"from"] == b"msg0"


def frame(**fields):
    return msgpack.packb(fields, use_bin_type=True)


@pytest.mark.parametrize("data,reason", [
    (b"\xc1", "not msgpack"),
    (frame(op="publish"), "missing sender"),
    (msgpack.packb([1, 2]), "not a map"),
    (frame(op="nope", **{"from": "x"}), "unknown op"),
    (frame(op="published", **{"from": "x"}), "missing fields ['ids']"),
    (frame(op="published", ids=[1], extra=2, **{"from": "x"}), "unknown fields ['extra']"),
    (frame(op="published", ids="1", **{"from": "x"}), "field 'ids' has type str"),
    (frame(op="published", ids=[True], **{"from": "x"}), "field 'ids' has type list"),
    (frame(op="publish", ids=[1], topics=["t"], payloads=["text"], qos=[1], window=10,
           **{"from": "x"}), "field 'payloads' has type list"),
    (frame(op="publish", ids=[1, 2], topics=["t"], payloads=[b""], qos=[1], window=10,
           **{"from": "x"}), "the lists differ in length"),
    (frame(op="publish", ids=[1], topics=["t"], payloads=[b""], qos=[2], window=10,
           **{"from": "x"}), "qos must be 0 or 1"),
    (frame(op="publish", ids=[1], topics=["t"], payloads=[b""], qos=[1], window=0,
           **{"from": "x"}), "window must be at least 1"),
    (frame(op="publish", ids=[1], topics=["t"], payloads=[b""], qos=[1], **{"from": "x"}),
     "missing fields ['window']"),
    (frame(op="link_state", up=1, **{"from": "x"}), "field 'up' has type int"),
    (frame(op="shadow_request", thing="T", shadow=3, op_="x", **{"from": "x"}),
     "unknown fields ['op_']"),
    (frame(op="shadow_response", thing="T", shadow=None, status="accepted", payload=b"",
           **{"from": "x"}), "missing fields ['action']"),
    (frame(op="link_heartbeat", up=True, **{"from": "x"}), "missing fields ['healthy']"),
])
def test_bad_frames_are_refused(data, reason):
    with pytest.raises(BadFrame, match=reason.replace("[", r"\[").replace("]", r"\]")):
        decode(data)


@given(st.binary(max_size=64))
def test_decode_never_crashes_on_garbage(data):
    try:
        decode(data)
    except BadFrame:
        pass
