"""Properties of the simulator's Jobs service under any sequence of device requests,
cloud commands and time (hypothesis): it never raises, answers each request exactly once
on its own topic, never changes a terminal execution, never lowers a version, and sends
notify/notify-next exactly when §7.5's rule says (the pending set / the head changed)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from chariotd.sim import jobs
from chariotd.sim.job_states import TERMINAL
from chariotd.sim.jobs import ERROR_CODES, JobsError, cancel, create, expire, handle
from chariotd.sim.topics import parse_jobs_request

T = "$aws/things/T/jobs"
JOB_IDS = ["a", "b", "c", "$next", "x y"]

statuses = st.sampled_from(["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "QUEUED",
                            "CANCELED", "bogus", None])
text = st.text(max_size=6)
details = st.one_of(st.none(), st.dictionaries(st.sampled_from(["k", "p:q", "a b", ""]),
                                               st.one_of(text, st.integers()), max_size=3),
                    st.lists(text, max_size=2))
numbers = st.one_of(st.none(), st.integers(-2, 12), st.sampled_from(["1", "2", "x", True]))
fields = st.fixed_dictionaries({}, optional={
    "status": statuses, "statusDetails": details, "expectedVersion": numbers,
    "executionNumber": numbers, "stepTimeoutInMinutes": numbers,
    "includeJobDocument": st.one_of(st.booleans(), st.none(), text),
    "includeJobExecutionState": st.one_of(st.booleans(), text),
    "clientToken": st.one_of(text, st.integers())})
well_formed = st.fixed_dictionaries(
    {"status": st.sampled_from(["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"])},
    optional={"statusDetails": st.dictionaries(st.sampled_from(["k", "p"]),
                                               st.sampled_from(["1", "2"]), max_size=2),
              "expectedVersion": st.integers(1, 4),
              "stepTimeoutInMinutes": st.sampled_from([-1, 1, 3]),
              "includeJobExecutionState": st.booleans(), "clientToken": text})
payloads = st.one_of(well_formed.map(lambda d: json.dumps(d).encode()),
                     well_formed.map(lambda d: json.dumps(d).encode()),
                     fields.map(lambda d: json.dumps(d).encode()),
                     st.binary(max_size=8), st.just(b"[1]"))
topics = st.one_of(st.sampled_from([f"{T}/get", f"{T}/start-next", f"{T}/notify"]),
                   st.builds(lambda j, op: f"{T}/{j}/{op}", st.sampled_from(["a", "b", "c"]),
                             st.sampled_from(["get", "update", "update"])),
                   st.builds(lambda j, op: f"{T}/{j}/{op}", st.sampled_from(JOB_IDS),
                             st.sampled_from(["get", "update"])))
steps = st.one_of(
    st.tuples(st.just("request"), topics, payloads),
    st.tuples(st.just("create"), st.sampled_from(JOB_IDS), st.sampled_from([None, 1, 2])),
    st.tuples(st.just("cancel"), st.sampled_from(JOB_IDS), st.booleans()),
    st.tuples(st.just("time"), st.integers(0, 200)))


def head_key(executions):
    first = jobs.head(executions)
    return first.key if first else None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
       st.lists(steps, max_size=25))
def test_any_sequence_keeps_the_invariants(queued, sequence):
    executions, now = (), 1_000_000
    for job_id in queued:
        executions, _ = create(executions, "T", job_id, {"n": 0}, now, 3)
    for step in sequence:
        before = executions
        if step[0] == "request":
            _, topic, payload = step
            executions, responses = handle(executions, parse_jobs_request(topic), payload, now)
            reply_topic, doc = responses[0]
            assert reply_topic in (f"{topic}/accepted", f"{topic}/rejected")
            assert doc["timestamp"] == now
            assert all(not t.endswith(("/accepted", "/rejected")) for t, _ in responses[1:])
            if reply_topic.endswith("/rejected"):
                assert doc["code"] in ERROR_CODES and executions == before
                assert ("executionState" in doc) <= (doc["code"] in (
                    "InvalidStateTransition", "VersionMismatch"))
            events = responses[1:]
        elif step[0] == "create":
            try:
                executions, events = create(executions, "T", step[1], {"n": 1}, now, step[2])
            except JobsError as error:
                assert error.code in ("InvalidRequest", "ResourceAlreadyExists")
                events = []
        elif step[0] == "cancel":
            executions, events, _ = cancel(executions, "T", step[1], step[2], now)
        else:
            now += step[1] * 60
            executions, events = expire(executions, "T", now)
            assert all(e.deadline is None or e.deadline > now
                       for e in executions if e.status == "IN_PROGRESS")

        old = {e.key: e for e in before}
        for execution in executions:
            previous = old.get(execution.key)
            if previous is not None:
                assert execution.version >= previous.version
                if previous.status in TERMINAL:
                    assert execution == previous, "a terminal execution never changes"
            assert execution.status in TERMINAL or execution.status in ("QUEUED",
                                                                         "IN_PROGRESS")
        assert len(executions) >= len(before)
        event_topics = [t for t, _ in events]
        pending_changed = {e.key for e in jobs.pending(before)} != {
            e.key for e in jobs.pending(executions)}
        assert (f"{T}/notify" in event_topics) == pending_changed
        assert (f"{T}/notify-next" in event_topics) == (head_key(before) != head_key(executions))
        for topic, doc in events:
            json.dumps(doc)
            if topic.endswith("/notify-next") and "execution" in doc:
                assert doc["execution"]["jobId"] == head_key(executions)[0]


valid_keys = st.text(alphabet="abcXYZ019:_-", min_size=1, max_size=128)
valid_values = st.text(alphabet=st.characters(exclude_categories=("C",)), min_size=1,
                       max_size=300)


@given(st.dictionaries(valid_keys, valid_values, max_size=5))
def test_valid_status_details_are_accepted_and_kept(details):
    assert jobs.status_details_error(details) is None
    executions, _ = create((), "T", "a", {}, 1)
    executions, responses = handle(executions, parse_jobs_request(f"{T}/a/update"),
                                   json.dumps({"status": "IN_PROGRESS",
                                               "statusDetails": details}).encode(), 2)
    assert responses[0][0].endswith("/accepted")
    assert executions[0].status_details == details


@given(valid_values, st.characters(categories=("Cc", "Cf", "Co", "Cn", "Cs")),
       st.integers(0, 300))
def test_a_category_c_character_anywhere_is_refused(value, bad, at):
    assert jobs.status_details_error({"k": value[:at] + bad + value[at:]})
