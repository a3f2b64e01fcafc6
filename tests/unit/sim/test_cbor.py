"""The simulator's CBOR codec (chariotd/sim/cbor.py): RFC 8949 Appendix A vectors, a
round trip of anything JSON can hold (hypothesis), and hostile input that must fail
fast with CborError, never hang, recurse or allocate by a declared length."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariotd.sim import cbor
from chariotd.sim.cbor import CborError

VECTORS = [  # RFC 8949 Appendix A
    ("00", 0), ("17", 23), ("1818", 24), ("1903e8", 1000), ("1b000000e8d4a51000", 10 ** 12),
    ("20", -1), ("3863", -100), ("f4", False), ("f5", True), ("f6", None),
    ("f93c00", 1.0), ("fa47c35000", 100000.0), ("fb3ff199999999999a", 1.1),
    ("60", ""), ("6449455446", "IETF"), ("62c3bc", "\u00fc"), ("4401020304", b"\x01\x02\x03\x04"),
    ("83010203", [1, 2, 3]), ("a26161016162820203", {"a": 1, "b": [2, 3]}),
    ("9f018202039f0405ffff", [1, [2, 3], [4, 5]]), ("bf61610161629f0203ffff", {"a": 1, "b": [2, 3]}),
    ("7f657374726561646d696e67ff", "streaming"), ("c11a514b67b0", 1363896240),
]


@pytest.mark.parametrize("hex_text,value", VECTORS)
def test_rfc_vectors_decode(hex_text, value):
    assert cbor.loads(bytes.fromhex(hex_text)) == value


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 64 + 1, 2 ** 64 - 1)
    | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=4),
    max_leaves=20)


@given(json_values)
def test_round_trip(value):
    assert cbor.loads(cbor.dumps(value)) == value


def test_nan_encodes_as_half_precision():
    assert math.isnan(cbor.loads(cbor.dumps(float("nan"))))


@pytest.mark.parametrize("hex_text", [
    "", "18", "1c", "9b" + "ff" * 8, "bb" + "ff" * 8, "7b" + "ff" * 8 + "61",
    "ff", "81ff", "a1ff01", "bf61ff", "62c3", "62ffff", "9f" * 40 + "ff" * 40,
    "81" * 100 + "00", "a181" + "0001", "0000", "f8", "7f01ff", "1f",
])
def test_hostile_input_fails_cleanly(hex_text):
    with pytest.raises(CborError):
        cbor.loads(bytes.fromhex(hex_text))


@given(st.binary(max_size=64))
def test_any_bytes_decode_or_raise_cbor_error(data):
    try:
        cbor.loads(data)
    except CborError:
        pass
