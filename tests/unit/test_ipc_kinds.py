"""How a message kind is declared (ipc/messages.py): a typing.NamedTuple registered by
`_kind`, its field checkers built once from typing.get_type_hints, an unsupported field
type refused when the class is defined."""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Set, Tuple

import pytest

from chariotd.ipc import messages
from chariotd.ipc.messages import Applied, BadFrame, PublishFailed, decode, encode


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    monkeypatch.setattr(messages, "KINDS", dict(messages.KINDS))


def test_a_kind_round_trips_with_its_defaults_and_string_annotations():
    # `from __future__ import annotations` here: every annotation below is a string.
    @messages._kind("test_probe")
    class Probe(NamedTuple):
        id: int
        names: List[str]
        extra: Dict[str, Any]
        note: Optional[str] = None
        ratio: float = 1.0

    assert Probe.required == {"id", "names", "extra"}
    sender, message = decode(encode(Probe(3, ["a"], {"k": [1]}), "msg0"))
    assert (sender, message) == ("msg0", Probe(3, ["a"], {"k": [1]}, None, 1.0))
    with pytest.raises(BadFrame, match="field 'names'"):
        decode(encode(Probe(3, [b"not text"], {}), "msg0"))
    with pytest.raises(BadFrame, match="field 'id'"):
        decode(encode(Probe(True, [], {}), "msg0"))  # a bool is never an int in a frame


@pytest.mark.parametrize("annotation", [Set[int], Tuple[int, int], complex, object,
                                        List[Tuple[int]], Optional[set]])
def test_an_unsupported_field_type_is_refused_when_the_kind_is_defined(annotation):
    with pytest.raises(TypeError, match="cannot have the type"):
        messages._kind("test_odd")(NamedTuple("Odd", [("value", annotation)]))
    assert "test_odd" not in messages.KINDS


def test_only_a_named_tuple_is_a_kind_and_an_op_is_taken_once():
    class Plain:
        id: int

    with pytest.raises(TypeError, match="NamedTuple"):
        messages._kind("test_plain")(Plain)
    with pytest.raises(TypeError, match="taken"):
        messages._kind("applied")(NamedTuple("Again", [("id", int)]))
    with pytest.raises(TypeError, match="taken"):
        messages._kind("test_op")(NamedTuple("Named", [("op", str)]))


def test_messages_equal_only_their_own_kind():
    assert Applied(1) == Applied(id=1) and Applied(1) != Applied(2)
    assert Applied(1) != (1,)
    Other = messages._kind("test_other")(NamedTuple("Other", [("id", int)]))
    assert Applied(1) != Other(1) and hash(Applied(1)) == hash(Applied(1))
    assert PublishFailed(1, "x", True) == PublishFailed(id=1, reason="x", charge=True)
