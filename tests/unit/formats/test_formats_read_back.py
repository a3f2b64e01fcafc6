"""Formats write only what they read back (issue 12, finding 3): for every value, a
format either refuses it (FormatError, from `held` and `stringify` alike) or writes
text that reads back to what the reconcile compares against (`read_held(text) ==
held(value)`), and that `parse` turns into a value holding the same, nested at most
MAX_DEPTH levels. Keys that are prefixes of each other, flattened objects, arrays and
depth around the limit are drawn on purpose."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chariotd import formats
from chariotd.formats import FormatError
from chariotd.shadow.values import MAX_DEPTH, deeper_than, values_equal

# Names that are `_`-prefixes of each other, odd underscores, names the shell refuses.
PREFIX_NAMES = ["a", "a_b", "a_b_c", "b", "server", "server_port", "log", "log_level",
                "log_level_x", "x_", "_x", "x__y", "PATH", "LD", "PRELOAD", "a-b", "1a"]
names = st.one_of(st.sampled_from(PREFIX_NAMES), st.from_regex(r"[a-z_][a-z0-9_]{0,5}",
                                                               fullmatch=True))
scalars = st.one_of(st.booleans(), st.integers(-2**60, 2**60),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=8), st.sampled_from(["1", "1.0", "true", "", "'"]))
leaves = st.one_of(scalars, st.none(), st.lists(scalars, max_size=3))


def chain(depth: int, leaf=1):
    """{"a": {"a": ... LEAF}} nesting DEPTH objects."""
    for _ in range(depth):
        leaf = {"a": leaf}
    return leaf


values = st.one_of(
    st.recursive(st.dictionaries(names, leaves, max_size=5),
                 lambda inner: st.dictionaries(names, st.one_of(leaves, inner), max_size=4),
                 max_leaves=14),
    st.builds(lambda depth, extra: {"server": chain(depth), "server_port": extra},
              st.integers(MAX_DEPTH - 3, MAX_DEPTH + 3), scalars),
    st.builds(lambda depth: {"a": chain(depth, [1])}, st.integers(MAX_DEPTH - 3, MAX_DEPTH + 1)),
    scalars, st.lists(scalars, max_size=3))


def check(module, value):
    try:
        expected = module.held(value)
    except FormatError:
        try:
            module.stringify(value)
        except FormatError:
            return "refused"
        raise AssertionError(f"{module.NAME}: held refused what stringify wrote")
    text = module.stringify(value)
    assert values_equal(module.read_held(text), expected), text
    parsed = module.parse(text)
    assert not deeper_than(parsed, MAX_DEPTH)
    assert values_equal(module.held(parsed), expected), text
    return "written"


@settings(max_examples=400, deadline=None)
@given(values)
def test_every_format_reads_back_what_it_writes(value):
    for name in formats.NAMES:
        check(formats.get(name), value)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, MAX_DEPTH + 8))
def test_one_depth_limit_for_writing_and_reading(depth):
    value = chain(depth - 1, {})  # DEPTH levels
    for name in ("JSON", "SHELL"):
        module = formats.get(name)
        if depth > MAX_DEPTH:
            assert check(module, value) == "refused"
        else:
            assert check(module, value) == "written"
    text = "[" * depth + "]" * depth
    if depth > MAX_DEPTH:
        try:
            formats.json.parse(text)
        except FormatError:
            return
        raise AssertionError("JSON read a value its writer refuses")
    assert formats.json.parse(text) is not None


def test_prefix_names_are_written_and_read_back():
    value = {"server": "a", "server_port": 80, "log": "on", "log_level": "debug"}
    assert check(formats.shell, value) == "written"
    assert formats.shell.parse(formats.shell.stringify(value)) == value
