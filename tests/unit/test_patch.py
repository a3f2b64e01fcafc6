"""Device-side patch logic: DELETE normalisation, apply, diff, combine."""

from hypothesis import given, strategies as st

from chariotd.shadow.merge import merge
from chariotd.shadow.patch import NO_CHANGE, apply, combine, diff, normalise

scalars = st.one_of(st.booleans(), st.integers(-5, 5), st.text(max_size=3))
keys = st.sampled_from(list("abcd"))
values = st.recursive(scalars | st.lists(scalars, max_size=3),
                      lambda children: st.dictionaries(keys, children, max_size=3),
                      max_leaves=8)
objects = st.dictionaries(keys, values, max_size=4)


def without_empty_objects(value):
    if isinstance(value, dict):
        cleaned = {k: without_empty_objects(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v != {}}
    return value


def test_normalise_turns_delete_into_null():
    assert normalise({"a": "DELETE", "b": {"c": "DELETE", "d": []}}) == {
        "a": None, "b": {"c": None, "d": []}}
    assert normalise({"d": [], "e": [1]}, empty_array_deletes=True) == {"d": None, "e": [1]}
    assert normalise("DELETE") is None


def test_apply():
    assert apply({"a": 1, "b": {"c": 2}}, {"a": None, "b": {"d": 3}}) == {"b": {"c": 2, "d": 3}}
    assert apply(None, {"a": 1, "b": None}) == {"a": 1}
    assert apply({"a": 1}, "text") == "text"
    assert apply({"a": 1}, None) is None


def test_diff():
    assert diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": 3, "c": 4}
    assert diff({"a": 1, "b": {"x": 1}}, {"b": {}}) == {"a": None, "b": {"x": None}}
    assert diff({"a": [1, 2]}, {"a": [1, 2]}) is NO_CHANGE
    assert diff(None, {"a": 1}) == {"a": 1}
    assert diff({"a": 1}, None) is None
    assert diff(1, 1.0) is NO_CHANGE
    assert diff(True, 1) == 1


@given(objects, objects)
def test_diff_applied_to_old_gives_new(old, new):
    patch = diff(old, new)
    result = old if patch is NO_CHANGE else merge(old, patch)
    assert without_empty_objects(result) == without_empty_objects(new)


patches = st.dictionaries(keys, st.none() | values, max_size=4)


@given(objects, patches, patches)
def test_combine_is_applying_one_then_the_other(base, first, second):
    combined = combine(first, second)
    if combined is not NO_CHANGE:
        assert merge(base, combined) == merge(merge(base, first), second)


def test_combine_refuses_an_object_after_a_scalar():
    assert combine({"b": False}, {"b": {}}) is NO_CHANGE
    assert combine({"b": None}, {"b": {"c": 1}}) is NO_CHANGE
    assert combine({"b": {"c": 1}}, {"b": {"d": None}, "e": 2}) == {
        "b": {"c": 1, "d": None}, "e": 2}
