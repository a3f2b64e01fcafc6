"""Hostile input for the fuzz tests: JSON values of every type, raw bytes, invalid
UTF-8, hostile nesting, integers Python refuses to convert, and documents whose keys
are the ones a parser knows, holding any of those.

Example counts: CHARIOTD_FUZZ_SCALE (default 1) multiplies every test's
`max_examples`; e.g. `CHARIOTD_FUZZ_SCALE=50 scripts/test tests/fuzz` for a long run.
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("CHARIOTD_FUZZ_SCALE", "1"))


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


# Text a shell, a JSON decoder or a log line may choke on.
NASTY_TEXT = ["", " ", "'", '"', "\\", "\\'", "$(touch pwned)", "`touch pwned`", "${IFS}",
              "$HOME", "\n", "\r", "\0", "\x1b[31m", "\ud800", "\udcff", "#", "+", "/",
              "$aws/things/dev1/shadow/update", "a/#", "DELETE", "null", "1e999", "-0",
              "\u2028", "\ufeff", "é", "🚀", "x" * 300]

text = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=20),
                 st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7f),
                         max_size=12))
numbers = st.one_of(st.integers(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=False), st.sampled_from([0, 1, -1, 0.0, 1.0, 2**53 + 1]))
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(text, inner, max_size=4)),
    max_leaves=16)


def dumps(value) -> bytes:
    """VALUE as JSON bytes the way a hostile writer might: lone surrogates escaped,
    infinities written as 1e999 (which json reads back as inf)."""
    out = json.dumps(value).replace("Infinity", "1e999").replace("NaN", "0")
    return out.encode("utf-8", "surrogatepass")


def nested(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


deep_json = st.one_of(
    st.integers(1, 3000).map(nested),
    st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(20, 60).map(lambda n: b'{"a":' * n + b"{}" + b"}" * n))
big_integers = st.integers(4290, 6000).map(lambda n: b"1" * n)


@st.composite
def mutated(draw, base: st.SearchStrategy) -> bytes:
    """BASE's bytes with a few bytes inserted, deleted or replaced (invalid UTF-8,
    stray quotes and brackets)."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(data)))
        choice = draw(st.integers(0, 2))
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\0", b'"', b"[",
                                     b"}", b"\\", b"\\u", b"'", b"\n", b"$(", b"NaN"]))
        if choice == 0:
            data[position:position] = junk
        elif choice == 1:
            del data[position:position + 1]
        else:
            data[position:position + len(junk)] = junk
    return bytes(data)


def documents(keys, values=json_values) -> st.SearchStrategy:
    """JSON objects holding some of KEYS (and maybe others), each with any value."""
    return st.dictionaries(st.one_of(st.sampled_from(list(keys)), text), values,
                           max_size=len(keys) + 2)


def hostile_bytes(keys=()) -> st.SearchStrategy:
    """Bytes a hostile file or message may hold; KEYS: the keys its parser knows."""
    structured = documents(keys).map(dumps) if keys else json_values.map(dumps)
    return st.one_of(st.binary(max_size=200), structured, mutated(structured), deep_json,
                     big_integers, json_values.map(dumps))
