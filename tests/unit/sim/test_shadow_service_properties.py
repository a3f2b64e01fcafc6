"""Property tests: random request sequences keep the shadow service's invariants (§2.4, §2.5)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from chariotd.sim.shadow.delta import delta
from chariotd.sim.shadow_service import ShadowOptions, handle
from chariotd.sim.topics import ShadowRequest

KEYS = st.sampled_from(["a", "b", "c", "timestamp"])
SCALARS = st.one_of(st.integers(-3, 3), st.booleans(), st.sampled_from(["x", "y"]),
                    st.sampled_from([1.0, 2.5]))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(KEYS, st.one_of(inner, st.none()), max_size=3)),
    max_leaves=8)
SECTION = st.one_of(st.none(), st.dictionaries(KEYS, st.one_of(VALUES, st.none()), max_size=3))
STATE = st.one_of(st.none(), st.fixed_dictionaries(
    {}, optional={"desired": SECTION, "reported": SECTION}))
REQUEST = st.one_of(
    st.tuples(st.just("update"), STATE),
    st.tuples(st.just("get"), st.none()),
    st.tuples(st.just("delete"), st.none()),
)


def _shape(state, meta):
    """Metadata mirrors the state tree: same keys, arrays element for element."""
    if isinstance(state, dict):
        return isinstance(meta, dict) and meta.keys() == state.keys() and all(
            _shape(state[k], meta[k]) for k in state)
    if isinstance(state, list):
        return isinstance(meta, list) and len(meta) == len(state) and all(
            _shape(s, m) for s, m in zip(state, meta))
    return isinstance(meta, dict) and set(meta) == {"timestamp"}


@settings(max_examples=300, deadline=None)
@given(st.lists(REQUEST, max_size=12))
def test_invariants(requests):
    record = None
    last_current = None
    last_version = 0
    for now, (op, state) in enumerate(requests, start=1):
        payload = json.dumps({"state": state, "clientToken": f"t{now}"}).encode() \
            if op == "update" else b""
        before = record
        record, responses = handle(record, ShadowRequest("t", None, op), payload, now,
                                   ShadowOptions(max_depth=12))
        topics = {topic.rsplit("/", 2)[-2] + "/" + topic.rsplit("/", 1)[-1]: doc
                  for topic, doc in responses}
        if "update/accepted" in topics:
            # version increases by exactly one per accepted update
            assert topics["update/accepted"]["version"] == last_version + 1
            last_version += 1
            documents = topics["update/documents"]
            current = documents["current"]
            # documents.previous is the last current (absent when the shadow was created)
            assert documents.get("previous") == last_current
            last_current = current
            assert current["version"] == last_version
            # delta event = f(desired, reported), published exactly when non-empty
            expected = delta(current["state"].get("desired"), current["state"].get("reported"))
            if expected:
                assert topics["update/delta"]["state"] == expected
                assert topics["update/delta"]["version"] == last_version
            else:
                assert "update/delta" not in topics
            assert _shape(current["state"], current["metadata"])
            # no section is ever stored empty, no null is ever stored
            assert all(current["state"].values())
            assert "null" not in json.dumps(current["state"])
        elif "delete/accepted" in topics:
            assert topics["delete/accepted"]["version"] == last_version
            last_current = None
        elif "get/accepted" in topics:
            doc = topics["get/accepted"]
            assert doc["version"] == last_version
            state = dict(doc["state"])
            got_delta = state.pop("delta", {})
            assert got_delta == delta(state.get("desired"), state.get("reported"))
        else:
            # every rejection leaves the record as it was
            assert record == before
            assert any(t.endswith("/rejected") for t in topics)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["get", "update", "delete"]),
       st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text()),
                              lambda i: st.one_of(st.lists(i), st.dictionaries(st.text(), i)),
                              max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_any_payload_gets_an_answer_never_a_crash(op, payload):
    """Bad requests are answered with accepted or rejected, never an exception."""
    _, responses = handle(None, ShadowRequest("t", "s", op), payload, 1)
    assert responses
    assert responses[0][0].rsplit("/", 1)[-1] in ("accepted", "rejected")
    for _, doc in responses:
        json.dumps(doc)
