from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chariotd.formats import FormatError
from chariotd.formats import json as jsonfmt


def test_layout_keeps_order_indents_two_and_ends_with_newline():
    value = {"zeta": 1, "alpha": {"b": [1, "two", True], "a": "ü"}, "empty": {}}
    assert jsonfmt.stringify(value) == (
        '{\n'
        '  "zeta": 1,\n'
        '  "alpha": {\n'
        '    "b": [\n'
        '      1,\n'
        '      "two",\n'
        '      true\n'
        '    ],\n'
        '    "a": "ü"\n'
        '  },\n'
        '  "empty": {}\n'
        '}\n'
    )


def test_null_members_are_left_out_at_every_level():
    assert jsonfmt.stringify({"a": None, "b": {"c": None, "d": 1}}) == (
        '{\n  "b": {\n    "d": 1\n  }\n}\n')


def test_top_level_null_is_refused():
    with pytest.raises(FormatError, match="null"):
        jsonfmt.stringify(None)


def test_integral_floats_print_as_javascript_does():
    assert jsonfmt.stringify({"a": 1.0, "b": -64.2, "c": 1e21}) == (
        '{\n  "a": 1,\n  "b": -64.2,\n  "c": 1e+21\n}\n')


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused(bad):
    with pytest.raises(FormatError, match="cannot hold"):
        jsonfmt.stringify({"a": [bad]})


def test_non_json_types_are_refused():
    with pytest.raises(FormatError, match="set"):
        jsonfmt.stringify({"a": {1, 2}})
    with pytest.raises(FormatError, match="not a string"):
        jsonfmt.stringify({1: "a"})


def test_lone_surrogate_is_refused():
    with pytest.raises(FormatError, match="surrogate"):
        jsonfmt.stringify({"a": "\ud800"})


def test_parse():
    assert jsonfmt.parse('{"b": [1, 2.5, "x"], "a": {"n": false}}') == {
        "b": [1, 2.5, "x"], "a": {"n": False}}
    assert list(jsonfmt.parse('{"b": 1, "a": 2}')) == ["b", "a"]


@pytest.mark.parametrize("text", ["", "{", '{"a": NaN}', '{"a": Infinity}', "{a: 1}", "[1] x"])
def test_parse_errors_are_format_errors(text):
    with pytest.raises(FormatError, match="JSON"):
        jsonfmt.parse(text)
    assert issubclass(FormatError, ValueError)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
).filter(lambda v: v is not None)


def without_nulls(value):
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_round_trip(value):
    assert jsonfmt.parse(jsonfmt.stringify(value)) == without_nulls(value)
