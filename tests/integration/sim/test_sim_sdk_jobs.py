"""The simulator's Jobs service held against the official AWS IoT Device SDK v2 for Python:
the v2 client (MQTT 5, request-response, replies matched by clientToken) and the v1 client
(MQTT 3.1.1) deserialise every reply and event of IOT_CORE.md §7 (get pending, start-next,
describe, update to SUCCEEDED, notify and notify-next, rejections)."""

from __future__ import annotations

import datetime
import queue

import pytest
from awscrt import mqtt
from awscrt.mqtt_request_response import SubscriptionStatusEvent, SubscriptionStatusEventType
from awsiot import ServiceStreamOptions, V2ServiceException, iotjobs

from sdk_clients import TIMEOUT, mqtt3_connection, mqtt5_client, rr_options
from sim_clients import sim  # noqa: F401 (fixture)


def rejection(future) -> iotjobs.V2ErrorResponse:
    with pytest.raises(V2ServiceException) as caught:
        future.result(TIMEOUT)
    error = caught.value.modeled_error
    assert isinstance(error, iotjobs.V2ErrorResponse), caught.value.message
    assert isinstance(error.timestamp, datetime.datetime)
    return error


def test_v2_client_runs_a_queue_of_jobs(sim):
    with mqtt5_client(sim, sim.device("dev1")) as device:
        jobs = iotjobs.IotJobsClientV2(device.client, rr_options())
        next_events: "queue.Queue[iotjobs.NextJobExecutionChangedEvent]" = queue.Queue()
        list_events: "queue.Queue[iotjobs.JobExecutionsChangedEvent]" = queue.Queue()
        subscribed: "queue.Queue[SubscriptionStatusEvent]" = queue.Queue()
        streams = [
            jobs.create_next_job_execution_changed_stream(
                iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name="dev1"),
                ServiceStreamOptions(incoming_event_listener=next_events.put,
                                     subscription_status_listener=subscribed.put)),
            jobs.create_job_executions_changed_stream(
                iotjobs.JobExecutionsChangedSubscriptionRequest(thing_name="dev1"),
                ServiceStreamOptions(incoming_event_listener=list_events.put,
                                     subscription_status_listener=subscribed.put))]
        for stream in streams:
            stream.open()
        for _ in streams:
            assert subscribed.get(timeout=TIMEOUT).type == \
                SubscriptionStatusEventType.SUBSCRIPTION_ESTABLISHED

        pending = jobs.get_pending_job_executions(
            iotjobs.GetPendingJobExecutionsRequest(thing_name="dev1")).result(TIMEOUT)
        assert (pending.in_progress_jobs, pending.queued_jobs) == ([], [])
        empty = jobs.start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(thing_name="dev1")).result(TIMEOUT)
        assert empty.execution is None and isinstance(empty.timestamp, datetime.datetime)

        sim.create_job("dev1", {"operation": "first"}, job_id="job1", in_progress_timeout=60)
        event = next_events.get(timeout=TIMEOUT)
        assert (event.execution.job_id, event.execution.status,
                event.execution.job_document) == ("job1", "QUEUED", {"operation": "first"})
        changed = list_events.get(timeout=TIMEOUT)
        assert [s.job_id for s in changed.jobs["QUEUED"]] == ["job1"]
        sim.create_job("dev1", {"operation": "second"}, job_id="job2")
        changed = list_events.get(timeout=TIMEOUT)
        assert [s.job_id for s in changed.jobs["QUEUED"]] == ["job1", "job2"]
        assert next_events.empty(), "a second job does not change the head"

        started = jobs.start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(
                thing_name="dev1", step_timeout_in_minutes=10,
                status_details={"step": "download"})).result(TIMEOUT)
        execution = started.execution
        assert (execution.job_id, execution.status, execution.version_number,
                execution.execution_number, execution.status_details) == (
            "job1", "IN_PROGRESS", 2, 1, {"step": "download"})
        assert isinstance(execution.started_at, datetime.datetime)
        assert execution.queued_at <= execution.started_at == execution.last_updated_at

        described = jobs.describe_job_execution(iotjobs.DescribeJobExecutionRequest(
            thing_name="dev1", job_id="$next", include_job_document=False)).result(TIMEOUT)
        assert (described.execution.job_id, described.execution.job_document) == ("job1", None)
        described = jobs.describe_job_execution(iotjobs.DescribeJobExecutionRequest(
            thing_name="dev1", job_id="job2")).result(TIMEOUT)
        assert (described.execution.status, described.execution.job_document) == (
            "QUEUED", {"operation": "second"})

        progress = jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name="dev1", job_id="job1", status="IN_PROGRESS", expected_version=2,
            status_details={"progress": "50%"}, include_job_execution_state=True,
            include_job_document=True)).result(TIMEOUT)
        assert (progress.execution_state.status, progress.execution_state.version_number,
                progress.execution_state.status_details, progress.job_document) == (
            "IN_PROGRESS", 3, {"progress": "50%"}, {"operation": "first"})

        error = rejection(jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name="dev1", job_id="job1", status="SUCCEEDED", expected_version=2)))
        assert (error.code, error.execution_state.version_number) == ("VersionMismatch", 3)
        assert error.code == iotjobs.RejectedErrorCode.VERSION_MISMATCH

        sim.inject_jobs_error("dev1", "RequestThrottled")
        error = rejection(jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name="dev1", job_id="job1", status="SUCCEEDED")))
        assert error.code == "RequestThrottled" and error.execution_state is None

        done = jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name="dev1", job_id="job1", status="SUCCEEDED",
            status_details={"result": "ok"})).result(TIMEOUT)
        assert done.execution_state is None and done.job_document is None
        event = next_events.get(timeout=TIMEOUT)
        assert (event.execution.job_id, event.execution.status) == ("job2", "QUEUED")
        assert [s.job_id for s in list_events.get(timeout=TIMEOUT).jobs["QUEUED"]] == ["job2"]

        error = rejection(jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name="dev1", job_id="job1", status="IN_PROGRESS")))
        assert (error.code, error.execution_state.status,
                error.execution_state.status_details) == (
            "InvalidStateTransition", "SUCCEEDED", {"result": "ok"})
        error = rejection(jobs.describe_job_execution(iotjobs.DescribeJobExecutionRequest(
            thing_name="dev1", job_id="job1")))
        assert error.code == "TerminalStateReached"
        error = rejection(jobs.describe_job_execution(iotjobs.DescribeJobExecutionRequest(
            thing_name="dev1", job_id="nope")))
        assert error.code == "ResourceNotFound"

        sim.cancel_job("job2")
        event = next_events.get(timeout=TIMEOUT)
        assert event.execution is None and isinstance(event.timestamp, datetime.datetime)
        assert list_events.get(timeout=TIMEOUT).jobs == {}
    assert [(e["jobId"], e["status"]) for e in sim.list_jobs("dev1")] == [
        ("job1", "SUCCEEDED"), ("job2", "CANCELED")]


def test_v1_client_start_next_update_and_notify_next(sim):
    sim.create_job("dev1", {"operation": "only"}, job_id="only")
    with mqtt3_connection(sim, sim.device("dev1")) as connection:
        jobs = iotjobs.IotJobsClient(connection)
        events: "queue.Queue[tuple]" = queue.Queue()
        subscriptions = [
            jobs.subscribe_to_start_next_pending_job_execution_accepted(
                iotjobs.StartNextPendingJobExecutionSubscriptionRequest(thing_name="dev1"),
                mqtt.QoS.AT_LEAST_ONCE, lambda r: events.put(("started", r))),
            jobs.subscribe_to_get_pending_job_executions_accepted(
                iotjobs.GetPendingJobExecutionsSubscriptionRequest(thing_name="dev1"),
                mqtt.QoS.AT_LEAST_ONCE, lambda r: events.put(("pending", r))),
            jobs.subscribe_to_update_job_execution_accepted(
                iotjobs.UpdateJobExecutionSubscriptionRequest(thing_name="dev1", job_id="+"),
                mqtt.QoS.AT_LEAST_ONCE, lambda r: events.put(("updated", r))),
            jobs.subscribe_to_update_job_execution_rejected(
                iotjobs.UpdateJobExecutionSubscriptionRequest(thing_name="dev1", job_id="+"),
                mqtt.QoS.AT_LEAST_ONCE, lambda r: events.put(("rejected", r))),
            jobs.subscribe_to_next_job_execution_changed_events(
                iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name="dev1"),
                mqtt.QoS.AT_LEAST_ONCE, lambda r: events.put(("next", r))),
        ]
        for future, _topic in subscriptions:
            future.result(TIMEOUT)

        jobs.publish_get_pending_job_executions(iotjobs.GetPendingJobExecutionsRequest(
            thing_name="dev1", client_token="g"), mqtt.QoS.AT_LEAST_ONCE).result(TIMEOUT)
        kind, pending = events.get(timeout=TIMEOUT)
        assert (kind, pending.client_token, [s.job_id for s in pending.queued_jobs]) == (
            "pending", "g", ["only"])

        jobs.publish_start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(thing_name="dev1", client_token="s"),
            mqtt.QoS.AT_LEAST_ONCE).result(TIMEOUT)
        kind, started = events.get(timeout=TIMEOUT)
        assert (kind, started.client_token, started.execution.job_id,
                started.execution.version_number) == ("started", "s", "only", 2)

        jobs.publish_update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name="dev1", job_id="only", status="BOGUS", client_token="b"),
            mqtt.QoS.AT_LEAST_ONCE).result(TIMEOUT)
        kind, refused = events.get(timeout=TIMEOUT)
        assert (kind, refused.code, refused.client_token) == ("rejected", "InvalidRequest", "b")

        jobs.publish_update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name="dev1", job_id="only", status="SUCCEEDED", client_token="u",
            expected_version=2), mqtt.QoS.AT_LEAST_ONCE).result(TIMEOUT)
        seen = dict(events.get(timeout=TIMEOUT) for _ in range(2))
        assert seen["updated"].client_token == "u"
        assert seen["next"].execution is None
