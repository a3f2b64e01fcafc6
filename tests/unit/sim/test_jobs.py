"""The simulator's Jobs service as pure functions (chariotd/sim/jobs.py) against
IOT_CORE.md §7: replies, the notify/notify-next table of §7.5, errors of §7.6, timers of
§7.7 and the golden exchanges of §7.9."""

from __future__ import annotations

import json

import pytest

from chariotd.sim import jobs
from chariotd.sim.jobs import JobsOptions, cancel, create, expire, handle
from chariotd.sim.topics import parse_jobs_request

T = "$aws/things/T/jobs"
NOW = 1_747_342_050


def request(executions, topic, doc=None, now=NOW, options=JobsOptions(), raw=None):
    payload = raw if raw is not None else json.dumps(doc or {}).encode()
    return handle(executions, parse_jobs_request(topic), payload, now, options)


def queue(*job_ids, now=NOW - 100, **kwargs):
    executions = ()
    for job_id in job_ids:
        executions, _ = create(executions, "T", job_id, {"op": job_id}, now, **kwargs)
    return executions


def by_topic(responses):
    return {topic: doc for topic, doc in responses}


def test_create_fires_notify_and_notify_next_as_g1():
    executions, events = create((), "T", "job1", {"operation": "test"}, 1517016947)
    assert events == [
        (f"{T}/notify", {"timestamp": 1517016947, "jobs": {"QUEUED": [
            {"jobId": "job1", "queuedAt": 1517016947, "lastUpdatedAt": 1517016947,
             "versionNumber": 1, "executionNumber": 1}]}}),
        (f"{T}/notify-next", {"timestamp": 1517016947, "execution": {
            "jobId": "job1", "status": "QUEUED", "queuedAt": 1517016947,
            "lastUpdatedAt": 1517016947, "versionNumber": 1, "executionNumber": 1,
            "jobDocument": {"operation": "test"}}})]
    _, second = create(executions, "T", "job2", {}, 1517016950)
    assert [topic for topic, _ in second] == [f"{T}/notify"], "the head is unchanged"
    with pytest.raises(jobs.JobsError) as caught:
        create(executions, "T", "job1", {}, 1517016950)
    assert caught.value.code == jobs.RESOURCE_ALREADY_EXISTS


def test_start_next_as_g2_without_events_and_a_second_returns_it_unchanged():
    executions = queue("Job1")
    executions, responses = request(executions, f"{T}/start-next", {"clientToken": "c"})
    assert responses == [(f"{T}/start-next/accepted", {
        "execution": {"jobId": "Job1", "status": "IN_PROGRESS", "queuedAt": NOW - 100,
                      "startedAt": NOW, "lastUpdatedAt": NOW, "versionNumber": 2,
                      "executionNumber": 1, "jobDocument": {"op": "Job1"}},
        "timestamp": NOW, "clientToken": "c"})]
    again, responses = request(executions, f"{T}/start-next",
                               {"statusDetails": {"k": "v"}, "stepTimeoutInMinutes": 5},
                               now=NOW + 9)
    assert again == executions, "an IN_PROGRESS pick is not changed"
    assert responses[0][1]["execution"]["versionNumber"] == 2
    assert "statusDetails" not in responses[0][1]["execution"]


def test_nothing_pending():
    _, responses = request((), f"{T}/start-next", {})
    assert responses == [(f"{T}/start-next/accepted", {"timestamp": NOW})]
    _, responses = request((), f"{T}/get", {"clientToken": "g"})
    assert responses == [(f"{T}/get/accepted", {"inProgressJobs": [], "queuedJobs": [],
                                                 "timestamp": NOW, "clientToken": "g"})]
    _, responses = request((), f"{T}/$next/get", {})
    assert responses == [(f"{T}/$next/get/accepted", {"timestamp": NOW})]


def test_get_pending_orders_in_progress_first_and_lists_ten():
    executions = queue(*[f"j{i}" for i in range(12)])
    executions, _ = request(executions, f"{T}/j5/update", {"status": "IN_PROGRESS"})
    _, responses = request(executions, f"{T}/get", {})
    doc = responses[0][1]
    assert [s["jobId"] for s in doc["inProgressJobs"]] == ["j5"]
    assert doc["inProgressJobs"][0]["startedAt"] == NOW
    assert [s["jobId"] for s in doc["queuedJobs"]] == ["j0", "j1", "j2", "j3", "j4", "j6",
                                                         "j7", "j8", "j9"]
    assert all("status" not in s and "jobDocument" not in s for s in doc["queuedJobs"])


def test_non_head_going_in_progress_moves_ahead_notify_next_only():
    executions = queue("a", "b")
    executions, responses = request(executions, f"{T}/b/update", {"status": "IN_PROGRESS"})
    assert [t for t, _ in responses] == [f"{T}/b/update/accepted", f"{T}/notify-next"]
    assert responses[1][1]["execution"]["jobId"] == "b"
    _, responses = request(executions, f"{T}/$next/get", {"includeJobDocument": False})
    assert responses[0][1]["execution"]["jobId"] == "b"
    assert "jobDocument" not in responses[0][1]["execution"]


def test_notify_on_status_change_switch():
    executions = queue("a")
    _, responses = request(executions, f"{T}/start-next", {},
                           options=JobsOptions(notify_on_status_change=True))
    notify = by_topic(responses)[f"{T}/notify"]
    assert list(notify["jobs"]) == ["IN_PROGRESS"]


def test_progress_updates_count_versions_replace_details_and_fire_nothing():
    executions, _ = request(queue("a"), f"{T}/start-next", {"statusDetails": {"s": "0"}})
    executions, responses = request(executions, f"{T}/a/update", {
        "status": "IN_PROGRESS", "statusDetails": {"progress": "50%"},
        "expectedVersion": "2", "clientToken": "client001"})
    assert responses == [(f"{T}/a/update/accepted",
                          {"timestamp": NOW, "clientToken": "client001"})]
    executions, responses = request(executions, f"{T}/a/update", {
        "status": "IN_PROGRESS", "includeJobExecutionState": True,
        "includeJobDocument": True})
    assert responses == [(f"{T}/a/update/accepted", {
        "executionState": {"status": "IN_PROGRESS", "statusDetails": {"progress": "50%"},
                           "versionNumber": 4},
        "jobDocument": {"op": "a"}, "timestamp": NOW})]


def test_last_pending_job_fails_and_the_queue_empties_as_g4():
    executions, _ = request(queue("Job2"), f"{T}/start-next", {})
    executions, responses = request(executions, f"{T}/Job2/update",
                                    {"status": "FAILED", "clientToken": "d9"})
    assert responses == [(f"{T}/Job2/update/accepted", {"timestamp": NOW, "clientToken": "d9"}),
                         (f"{T}/notify", {"timestamp": NOW, "jobs": {}}),
                         (f"{T}/notify-next", {"timestamp": NOW})]
    assert executions[0].status == "FAILED"


def test_terminal_non_head_fires_notify_only():
    executions = queue("a", "b")
    _, responses = request(executions, f"{T}/b/update", {"status": "REJECTED"})
    assert [t for t, _ in responses] == [f"{T}/b/update/accepted", f"{T}/notify"]


def rejected(responses):
    (topic, doc), = responses
    assert topic.endswith("/rejected")
    assert doc["timestamp"] == NOW
    return doc


@pytest.mark.parametrize("raw,code", [
    (b"", "InvalidJson"), (b"{", "InvalidJson"), (b"\xff", "InvalidJson"),
    (b"[]", "InvalidRequest"), (b'{"status":"QUEUED"}', "InvalidRequest"),
    (b'{"status":"CANCELED"}', "InvalidRequest"), (b"{}", "InvalidRequest"),
    (b'{"status":"SUCCEEDED","statusDetails":{"a b":"x"}}', "InvalidRequest"),
    (b'{"status":"SUCCEEDED","statusDetails":{"a":"x\\ny"}}', "InvalidRequest"),
    (b'{"status":"SUCCEEDED","statusDetails":{"a":""}}', "InvalidRequest"),
    (b'{"status":"SUCCEEDED","statusDetails":{"a":1}}', "InvalidRequest"),
    (b'{"status":"SUCCEEDED","statusDetails":["a"]}', "InvalidRequest"),
    (b'{"status":"IN_PROGRESS","stepTimeoutInMinutes":0}', "InvalidRequest"),
    (b'{"status":"IN_PROGRESS","stepTimeoutInMinutes":10081}', "InvalidRequest"),
    (b'{"status":"IN_PROGRESS","expectedVersion":true}', "InvalidRequest"),
    (b'{"status":"IN_PROGRESS","includeJobDocument":"yes"}', "InvalidRequest"),
    (b'{"status":"IN_PROGRESS","clientToken":7}', "InvalidRequest"),
    (b'{"status":"IN_PROGRESS","executionNumber":2}', "ResourceNotFound"),
])
def test_bad_updates_are_rejected_with_their_code(raw, code):
    executions = queue("a")
    new, responses = request(executions, f"{T}/a/update", raw=raw)
    assert new == executions
    assert rejected(responses)["code"] == code


def test_rejections_echo_the_token_and_carry_state_only_where_aws_does():
    executions, _ = request(queue("a"), f"{T}/start-next", {})
    doc = rejected(request(executions, f"{T}/a/update",
                           {"status": "SUCCEEDED", "expectedVersion": 1,
                            "clientToken": "c1"})[1])
    assert doc == {"code": "VersionMismatch", "message": doc["message"], "timestamp": NOW,
                   "clientToken": "c1",
                   "executionState": {"status": "IN_PROGRESS", "versionNumber": 2}}
    doc = rejected(request(executions, f"{T}/zzz/update",
                           {"status": "SUCCEEDED", "clientToken": "c2"})[1])
    assert (doc["code"], doc["clientToken"], "executionState" in doc) == (
        "ResourceNotFound", "c2", False)
    doc = rejected(request(executions, f"{T}/a/update", {"status": "QUEUED"})[1])
    assert doc["code"] == "InvalidRequest" and "executionState" not in doc


def test_terminal_executions_cannot_be_updated_or_described():
    executions, _ = request(queue("a"), f"{T}/a/update",
                            {"status": "SUCCEEDED", "statusDetails": {"progress": "100%"}})
    doc = rejected(request(executions, f"{T}/a/update", {"status": "IN_PROGRESS"})[1])
    assert doc["code"] == "InvalidStateTransition"
    assert doc["executionState"] == {"status": "SUCCEEDED",
                                     "statusDetails": {"progress": "100%"},
                                     "versionNumber": 2}
    assert rejected(request(executions, f"{T}/a/get", {})[1])["code"] == \
        "TerminalStateReached"
    _, responses = request(executions, f"{T}/a/get", {},
                           options=JobsOptions(describe_terminal_error=False))
    assert responses[0][1]["execution"]["status"] == "SUCCEEDED"


@pytest.mark.parametrize("topic", [f"{T}/$next/update", f"{T}/bad.id/get",
                                   f"{T}/a/get/more", f"{T}/notify"])
def test_topics_mapping_to_no_api_are_invalid_topic(topic):
    request_ = parse_jobs_request(topic)
    assert request_.api is None
    (reply_topic, doc), = handle(queue("a"), request_, b"{}", NOW)[1]
    assert (reply_topic, doc["code"]) == (f"{topic}/rejected", "InvalidTopic")


def test_status_details_limits_count_utf16_units():
    ok = {"a:b_c-9": "\U0001F600" * 512}
    assert jobs.status_details_error(ok) is None
    assert jobs.status_details_error({"k": "\U0001F600" * 512 + "x"})
    assert jobs.status_details_error({"k" * 129: "v"})
    assert jobs.status_details_error({"k": "\u200b"}), "format characters are category C"
    assert jobs.status_details_error({"k": "\ud800"}), "lone surrogates are category C"


def test_in_progress_timer_times_out_with_terminal_events():
    executions = queue("a", "b", in_progress_minutes=20)
    executions, responses = request(executions, f"{T}/start-next", {})
    assert responses[0][1]["execution"]["approximateSecondsBeforeTimedOut"] == 1200
    assert expire(executions, "T", NOW + 1199) == (executions, [])
    timed_out, events = expire(executions, "T", NOW + 1200)
    assert timed_out[0].status == "TIMED_OUT"
    assert [t for t, _ in events] == [f"{T}/notify", f"{T}/notify-next"]
    assert events[1][1]["execution"]["jobId"] == "b"
    doc = rejected(request(timed_out, f"{T}/a/update", {"status": "SUCCEEDED"},
                           now=NOW)[1])
    assert doc["code"] == "InvalidStateTransition"


def test_step_timer_worked_example_of_the_guide():
    minute = 60
    start = NOW
    executions, _ = request(queue("a", in_progress_minutes=20), f"{T}/start-next", {},
                            now=start)
    for at, step, deadline in ((5, 7, 12), (10, 5, 15), (13, 9, 20)):
        executions, _ = request(executions, f"{T}/a/update",
                                {"status": "IN_PROGRESS", "stepTimeoutInMinutes": step},
                                now=start + at * minute)
        assert executions[0].deadline == start + deadline * minute
    executions, _ = request(executions, f"{T}/a/update",
                            {"status": "IN_PROGRESS", "stepTimeoutInMinutes": -1},
                            now=start + 14 * minute)
    assert executions[0].deadline == start + 20 * minute, "-1 cancels the step timer"
    done, _ = request(executions, f"{T}/a/update", {"status": "SUCCEEDED"})
    assert done[0].deadline is None and jobs.next_deadline(done) is None


def test_cancel_queued_and_forced_in_progress():
    executions = queue("a", "b")
    executions, _ = request(executions, f"{T}/start-next", {})
    kept, events, execution = cancel(executions, "T", "a", False, NOW)
    assert (kept, events, execution.status) == (executions, [], "IN_PROGRESS")
    after_b, events, execution = cancel(executions, "T", "b", False, NOW)
    assert execution.status == "CANCELED"
    assert [t for t, _ in events] == [f"{T}/notify"]
    forced, events, execution = cancel(after_b, "T", "a", True, NOW)
    assert execution.status == "CANCELED"
    assert events == [(f"{T}/notify", {"timestamp": NOW, "jobs": {}}),
                      (f"{T}/notify-next", {"timestamp": NOW})]
    doc = rejected(request(forced, f"{T}/a/update", {"status": "SUCCEEDED"})[1])
    assert doc["code"] == "InvalidStateTransition"
    assert cancel(forced, "T", "zzz", True, NOW)[2] is None


def test_executions_round_trip_through_json():
    executions, _ = request(queue("a", in_progress_minutes=3), f"{T}/start-next",
                            {"statusDetails": {"x": "y"}, "stepTimeoutInMinutes": 1})
    stored = json.loads(json.dumps([e.to_json() for e in executions]))
    assert tuple(jobs.Execution.from_json(e) for e in stored) == executions
