"""Table-driven cases for merge, delta and metadata (IOT_CORE.md §2.3, §2.4)."""

from __future__ import annotations

import pytest

from chariotd.shadow import merge, values_equal
from chariotd.shadow.merge import merge_state
from chariotd.sim.shadow.delta import delta
from chariotd.sim.shadow.meta import carry_state, select, stamp

MERGE_CASES = [
    # (section, base, patch, expected)
    ("§2.4.1 objects merge recursively",
     {"a": {"x": 1}}, {"a": {"y": 2}}, {"a": {"x": 1, "y": 2}}),
    ("§2.4.1 scalars replace", {"a": 1}, {"a": "one"}, {"a": "one"}),
    ("§2.4.1 arrays replace wholesale", {"a": [1, 2, 3]}, {"a": [9]}, {"a": [9]}),
    ("§2.4.1 object replaces scalar", {"a": 1}, {"a": {"b": 2}}, {"a": {"b": 2}}),
    ("§2.4.1 scalar replaces object", {"a": {"b": 2}}, {"a": 3}, {"a": 3}),
    ("§2.4.2 null deletes a top key", {"a": 1, "b": 2}, {"a": None}, {"b": 2}),
    ("§2.4.2 null deletes at depth",
     {"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"c": None}}}, {"a": {"b": {"d": 2}}}),
    ("§2.4.2 null on a missing key is a no-op", {"a": 1}, {"z": None}, {"a": 1}),
    ("§2.4.6 an object emptied by nulls vanishes",
     {"n": {"x": 1}, "k": 1}, {"n": {"x": None}}, {"k": 1}),
    ("§2.4.6 a new object of only nulls is not added", {}, {"n": {"x": None}}, {}),
    ("§2.4.6 empty objects are not kept", {"k": 1}, {"e": {}}, {"k": 1}),
    ("§2.4.1 arrays of objects replace whole",
     {"a": [{"x": 1}]}, {"a": [{"y": 2}]}, {"a": [{"y": 2}]}),
]


@pytest.mark.parametrize("section,base,patch,expected", MERGE_CASES,
                         ids=[c[0] for c in MERGE_CASES])
def test_merge(section, base, patch, expected):
    before = repr(base)
    assert merge(base, patch) == expected
    assert repr(base) == before, "merge must not modify its input"


def test_merge_state_sections():
    """§2.4.3: "desired": null removes the whole section; other sections stay."""
    state = {"desired": {"a": 1}, "reported": {"a": 2}}
    assert merge_state(state, {"desired": None}) == {"reported": {"a": 2}}
    assert merge_state(state, {"reported": {"a": None}}) == {"desired": {"a": 1}}
    assert merge_state({}, {"desired": {"a": 1}}) == {"desired": {"a": 1}}


DELTA_CASES = [
    # (section, desired, reported, expected delta)
    ("§2.4.8 no reported: whole desired", {"a": 1, "b": {"c": 2}}, None,
     {"a": 1, "b": {"c": 2}}),
    ("§2.4.8 key missing from reported", {"a": 1, "b": 2}, {"a": 1}, {"b": 2}),
    ("§2.4.8 differing value", {"a": 1}, {"a": 2}, {"a": 1}),
    ("§2.4.8 equal: empty", {"a": 1}, {"a": 1}, {}),
    ("§2.4.8 keys only in reported never appear", {"a": 1}, {"a": 1, "z": 9}, {}),
    ("§6 nested delta keeps the path",
     {"lights": {"color": {"r": 0, "g": 255}}}, {"lights": {"color": {"r": 0, "g": 0}}},
     {"lights": {"color": {"g": 255}}}),
    ("§6 superset reported gives no delta", {"a": {"x": 1}}, {"a": {"x": 1, "y": 2}}, {}),
    ("§2.4.8 arrays count as one value", {"a": [1, 2]}, {"a": [1, 3]}, {"a": [1, 2]}),
    ("§6 equal arrays give no delta", {"a": [1, 2]}, {"a": [1, 2]}, {}),
    ("§2.4.8 numbers compare numerically", {"a": 1}, {"a": 1.0}, {}),
    ("§2.4.8 booleans are not numbers", {"a": True}, {"a": 1}, {"a": True}),
    ("§2.4.8 false is not 0", {"a": 0}, {"a": False}, {"a": 0}),
    ("§2.4.8 object vs scalar", {"a": {"b": 1}}, {"a": 5}, {"a": {"b": 1}}),
    ("§2.4.8 scalar vs object", {"a": 5}, {"a": {"b": 1}}, {"a": 5}),
    ("§2.4.8 no desired", None, {"a": 1}, {}),
]


@pytest.mark.parametrize("section,desired,reported,expected", DELTA_CASES,
                         ids=[c[0] for c in DELTA_CASES])
def test_delta(section, desired, reported, expected):
    assert delta(desired, reported) == expected


def test_values_equal_types():
    assert values_equal([1, {"a": 2.0}], [1.0, {"a": 2}])
    assert not values_equal([True], [1])
    assert not values_equal("1", 1)
    assert not values_equal(None, 0)
    assert values_equal(None, None)


def test_stamp_arrays_one_entry_per_element():
    """§2.3: metadata for an array is an array with one entry per element."""
    assert stamp({"a": [1, {"b": 2}], "c": None}, 5) == {
        "a": [{"timestamp": 5}, {"b": {"timestamp": 5}}], "c": {"timestamp": 5}}


def test_metadata_keeps_untouched_timestamps():
    """§2.3: timestamps of untouched fields are kept (capture: Color keeps its older time)."""
    old_state = {"reported": {"Color": "red", "Status": "Great"}}
    old_meta = {"reported": {"Color": {"timestamp": 1}, "Status": {"timestamp": 1}}}
    patch = {"reported": {"Status": "Awful"}}
    new_state = merge_state(old_state, patch)
    assert carry_state(old_state, old_meta, patch, new_state, 9) == {
        "reported": {"Color": {"timestamp": 1}, "Status": {"timestamp": 9}}}


def test_metadata_nested_and_replaced():
    old_state = {"desired": {"a": {"x": 1, "y": 2}, "b": 1}}
    old_meta = stamp(old_state, 1)
    patch = {"desired": {"a": {"x": 5}, "b": {"new": True}}}
    new_state = merge_state(old_state, patch)
    assert carry_state(old_state, old_meta, patch, new_state, 2) == {
        "desired": {"a": {"x": {"timestamp": 2}, "y": {"timestamp": 1}},
                    "b": {"new": {"timestamp": 2}}}}


def test_select_delta_metadata():
    meta = {"a": {"x": {"timestamp": 1}, "y": {"timestamp": 2}}, "b": [{"timestamp": 3}]}
    assert select(meta, {"a": {"y": 0}, "b": [1]}) == {
        "a": {"y": {"timestamp": 2}}, "b": [{"timestamp": 3}]}
