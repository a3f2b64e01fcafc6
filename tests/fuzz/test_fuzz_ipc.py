"""Fuzz: IPC frames (`chariotd.ipc.messages.decode`). Whatever bytes reach a mailbox,
decode returns a valid message or raises BadFrame (logged and dropped); a frame it
accepts has every field of its declared type and encodes back to the same message."""

from __future__ import annotations

import msgpack
from hypothesis import assume, given
from hypothesis import strategies as st

from chariotd.ipc.messages import KINDS, BadFrame, decode, encode, validate

from fuzz_values import fuzz_settings, json_values

field_values = st.one_of(json_values, st.binary(max_size=20), st.lists(
    st.one_of(st.integers(), st.binary(max_size=5), st.text(max_size=5)), max_size=3))
field_names = sorted({name for kind in KINDS.values() for name in kind._fields})
frames = st.fixed_dictionaries(
    {"op": st.one_of(st.sampled_from(sorted(KINDS)), json_values),
     "from": st.one_of(st.sampled_from(["link", "applier", "msg0", ""]), json_values)},
    optional={name: field_values for name in field_names}).flatmap(
    lambda frame: st.dictionaries(st.one_of(st.text(max_size=5), st.binary(max_size=5)),
                                  field_values, max_size=2).map(lambda extra: {**frame, **extra}))


def check(data: bytes) -> None:
    try:
        sender, message = decode(data)
    except BadFrame:
        return
    assert isinstance(sender, str) and sender
    validate(message)
    assert decode(encode(message, sender)) == (sender, message)


@fuzz_settings(250)
@given(frames)
def test_msgpack_maps(frame):
    try:
        data = msgpack.packb(frame, use_bin_type=True)
    except (OverflowError, UnicodeEncodeError):
        assume(False)  # not msgpack-able: no process could have sent it
    check(data)


@fuzz_settings(400)
@given(st.one_of(st.binary(max_size=300), st.integers(1, 100000).map(lambda n: b"\x91" * n),
                 st.binary(max_size=40).map(lambda b: b"\xdf\xff\xff\xff\xff" + b)))
def test_raw_bytes(data):
    check(data)
