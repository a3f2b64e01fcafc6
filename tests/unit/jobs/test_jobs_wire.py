"""Jobs topics and payloads against the golden exchanges of IOT_CORE.md §7.9."""

import json

import pytest
from hypothesis import given, strategies as st

from chariotd.jobs import wire

T = "T"
P = "$aws/things/T/jobs"


def test_g1_notify_next_carries_the_document():
    event = wire.parse(T, f"{P}/notify-next", json.dumps({
        "timestamp": 1517016948, "execution": {
            "jobId": "job1", "status": "QUEUED", "queuedAt": 1517016947,
            "lastUpdatedAt": 1517016947, "versionNumber": 1, "executionNumber": 1,
            "jobDocument": {"operation": "test"}}}).encode())
    assert event == wire.NotifyNext(wire.Execution("job1", 1, 1, "QUEUED",
                                                   {"operation": "test"}))
    assert wire.parse(T, f"{P}/notify-next", b'{"timestamp":1}') == wire.NotifyNext(None)


def test_g2_start_next_accepted():
    event = wire.parse(T, f"{P}/start-next/accepted", json.dumps({
        "clientToken": "ed5", "timestamp": 1747342050, "execution": {
            "jobId": "Job1", "status": "IN_PROGRESS", "queuedAt": 1747341871,
            "startedAt": 1747342050, "lastUpdatedAt": 1747342050, "versionNumber": 2,
            "executionNumber": 1, "jobDocument": {"ToDo": "Reboot"},
            "approximateSecondsBeforeTimedOut": 600}}).encode())
    assert event == wire.Accepted(wire.START_NEXT, None, "ed5", wire.Execution(
        "Job1", 1, 2, "IN_PROGRESS", {"ToDo": "Reboot"}, 600))


def test_rejection_with_execution_state():
    event = wire.parse(T, f"{P}/j-1/update/rejected", json.dumps({
        "code": "InvalidStateTransition", "message": "m", "clientToken": "c1",
        "timestamp": 1, "executionState": {"status": "SUCCEEDED", "versionNumber": 3}}
    ).encode())
    assert event == wire.Rejected(wire.UPDATE, "j-1", "c1", "InvalidStateTransition", "m",
                                  "SUCCEEDED", 3)


def test_requests():
    topic, payload = wire.update(T, "j1", "c", "SUCCEEDED", {"reason": "r"}, 2, 1)
    assert topic == f"{P}/j1/update"
    assert json.loads(payload) == {"status": "SUCCEEDED", "statusDetails": {"reason": "r"},
                                   "expectedVersion": 2, "executionNumber": 1,
                                   "clientToken": "c"}
    assert wire.start_next(T, "c", 5)[0] == f"{P}/start-next"
    assert json.loads(wire.describe(T, "j1", "c", 1)[1])["includeJobDocument"] is False
    assert wire.step_minutes(3600) == 61 and wire.step_minutes(1) == 2
    assert wire.step_minutes(10 ** 9) == 10080


@pytest.mark.parametrize("topic, payload", [
    (f"{P}/notify-next", b"not json"),
    (f"{P}/notify-next", b"[]"),
    (f"{P}/notify-next", b'{"execution": {"jobId": "../x", "status": "QUEUED"}}'),
    (f"{P}/notify-next", b'{"execution": {"jobId": "j", "status": "QUEUED", '
                         b'"executionNumber": true, "versionNumber": 1}}'),
    (f"{P}/start-next/rejected", b'{"code": 5}'),
])
def test_bad_messages(topic, payload):
    with pytest.raises(wire.BadMessage):
        wire.parse(T, topic, payload)


def test_other_topics_are_not_ours():
    assert wire.parse(T, "$aws/things/U/jobs/notify-next", b"{}") is None
    assert wire.parse(T, f"{P}/notify", b"{}") is None
    assert wire.parse(T, f"{P}/a b/update/accepted", b"{}") is None
    assert f"{P}/+/update/accepted" in wire.subscriptions(T)


@given(st.text(max_size=40), st.binary(max_size=200))
def test_anything_is_an_event_none_or_bad_message(suffix, payload):
    try:
        wire.parse(T, f"{P}/{suffix}", payload)
    except wire.BadMessage:
        pass
