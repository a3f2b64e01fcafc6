"""The jobs state machine, driven by the replies the cloud sends (through wire.parse),
step results and time; its actions are checked."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from chariotd.jobs import wire
from chariotd.jobs.details import (FAILED, IN_PROGRESS, SUCCEEDED, HandlerResult, Outcome,
                                   StepResult)
from chariotd.jobs.machine import (BACKOFF_CAP, CANCELING, IDLE, REJECTING, REPLY_TIMEOUT,
                                   REPORTING, RUNNING, STARTING, Publish, RemoveRecord,
                                   StartStep, StopHandler, ThingJobs, Wake, WriteRecord)
from chariotd.jobs.state import Record

T = "dev1"
P = f"$aws/things/{T}/jobs"
DOC = {"operation": "ok.sh", "args": ["a"]}


class Driver:
    def __init__(self, timeout=3600.0):
        self.m = ThingJobs(T, timeout, token_prefix="t")
        self.now = 100.0
        self.actions = []

    def do(self, actions):
        self.actions = actions
        return actions

    def published(self):
        return [(a.topic, json.loads(a.payload)) for a in self.actions
                if isinstance(a, Publish)]

    def last(self):
        (one,) = self.published()
        return one

    def up(self):
        return self.do(self.m.link_up(self.now))

    def reply(self, topic, body, token=None):
        if token is None:
            token = self.last()[1].get("clientToken")
        body = dict(body, clientToken=token, timestamp=1)
        event = wire.parse(T, topic, json.dumps(body).encode())
        return self.do(self.m.message(event, self.now))

    def execution(self, job="j1", number=1, version=2, doc=DOC, **extra):
        return dict({"jobId": job, "status": "IN_PROGRESS", "executionNumber": number,
                     "versionNumber": version, "jobDocument": doc}, **extra)

    def start(self, **kw):
        self.up()
        assert self.last()[0] == f"{P}/start-next"
        return self.reply(f"{P}/start-next/accepted", {"execution": self.execution(**kw)})

    def exit(self, result, handler_result=None):
        return self.do(self.m.step_exited(result, handler_result, self.now))


def kinds(actions):
    return [type(a).__name__ for a in actions]


def test_start_next_after_connect_asks_a_step_timer():
    d = Driver(timeout=600)
    d.up()
    topic, body = d.last()
    assert topic == f"{P}/start-next" and body["stepTimeoutInMinutes"] == 11
    assert d.m.state == STARTING


def test_nothing_pending_is_idle_until_notify_next():
    d = Driver()
    d.up()
    assert d.reply(f"{P}/start-next/accepted", {}) == [] and d.m.state == IDLE
    d.do(d.m.message(wire.NotifyNext(wire.Execution("j1", 1, 1, "QUEUED", DOC)), d.now))
    assert d.last()[0] == f"{P}/start-next"


def test_a_job_runs_and_its_result_is_sent_then_dropped():
    d = Driver()
    actions = d.start()
    assert kinds(actions) == ["WriteRecord", "StartStep"]
    record, step = actions[0].record, actions[1]
    assert record == Record("j1", 1, 2, 0)
    assert step.step.handler == "ok.sh" and step.step.args == ("a",)
    assert step.timeout == 3600 and step.raw_document == DOC and d.m.state == RUNNING
    actions = d.exit(StepResult(exit_status=0, stderr=b"note\n"))
    assert isinstance(actions[0], WriteRecord) and actions[0].record.outcome.status == SUCCEEDED
    topic, body = d.last()
    assert topic == f"{P}/j1/update"
    assert body["status"] == SUCCEEDED and body["expectedVersion"] == 2
    assert body["executionNumber"] == 1 and body["statusDetails"]["stderr"] == "note"
    assert d.m.state == REPORTING
    actions = d.reply(f"{P}/j1/update/accepted", {})
    assert isinstance(actions[0], RemoveRecord)
    assert d.last()[0] == f"{P}/start-next" and d.m.state == STARTING


def test_cloud_timer_shortens_the_handler_time_limit():
    d = Driver(timeout=3600)
    actions = d.start(approximateSecondsBeforeTimedOut=120)
    assert actions[1].timeout == 120


def test_a_bad_document_is_rejected_with_its_reason():
    d = Driver()
    d.start(doc={"operation": "h", "path": "/bin"})
    topic, body = d.last()
    assert topic == f"{P}/j1/update" and body["status"] == "REJECTED"
    assert "path" in body["statusDetails"]["reason"] and d.m.state == REJECTING
    d.reply(f"{P}/j1/update/accepted", {})
    assert d.m.state == STARTING


def test_steps_run_in_order_and_a_failure_stops_them():
    doc = {"version": "1.0", "steps": [
        {"action": {"name": "one", "type": "runHandler", "input": {"handler": "a"}}},
        {"action": {"name": "two", "type": "runHandler", "input": {"handler": "b"},
                    "ignoreStepFailure": "true"}},
        {"action": {"name": "three", "type": "runHandler", "input": {"handler": "c"}}}],
        "finalStep": {"action": {"name": "fin", "type": "runHandler",
                                 "input": {"handler": "f"}}}}
    d = Driver()
    d.start(doc=doc)
    actions = d.exit(StepResult(exit_status=0))
    assert kinds(actions)[:2] == ["WriteRecord", "StartStep"]
    assert actions[0].record.step == 1 and actions[1].step.name == "two"
    topic, body = d.last()  # progress: which step runs now
    assert body["status"] == IN_PROGRESS and body["statusDetails"] == {"step": "two"}
    d.reply(f"{P}/j1/update/accepted", {})
    actions = d.exit(StepResult(exit_status=1))  # ignored failure
    assert actions[1].step.name == "three" and Wake(101.0) in actions
    d.now += 2
    d.do(d.m.tick(d.now))
    assert d.last()[1]["statusDetails"] == {"step": "three"}
    d.reply(f"{P}/j1/update/accepted", {})
    d.exit(StepResult(exit_status=4))
    topic, body = d.last()
    assert body["status"] == FAILED and body["statusDetails"]["step"] == "three"
    assert body["expectedVersion"] == 4  # two progress updates were accepted


def test_a_final_result_in_the_result_file_ends_the_job():
    d = Driver()
    d.start(doc={"version": "1.0", "steps": [
        {"action": {"name": n, "type": "runHandler", "input": {"handler": n}}}
        for n in ("a", "b")]})
    d.exit(StepResult(exit_status=0), HandlerResult(FAILED, (("reason", "no space"),)))
    body = d.last()[1]
    assert body["status"] == FAILED and body["statusDetails"]["reason"] == "no space"


def test_progress_is_sent_at_most_once_a_second_latest_wins():
    d = Driver()
    d.start()
    d.do(d.m.progress_seen(HandlerResult(IN_PROGRESS, (("p", "10"),)), d.now))
    assert d.last()[1]["statusDetails"] == {"p": "10"}
    d.do(d.m.progress_seen(HandlerResult(IN_PROGRESS, (("p", "20"),)), d.now))
    d.do(d.m.progress_seen(HandlerResult(IN_PROGRESS, (("p", "30"),)), d.now))
    assert d.published() == []  # one in flight
    d.now += 0.2
    d.reply(f"{P}/j1/update/accepted", {}, token=d.m.inflight.token)
    assert d.published() == [] and Wake(101.0) in d.actions  # too soon
    d.now = 101.0
    d.do(d.m.tick(d.now))
    assert d.last()[1]["statusDetails"] == {"p": "30"}
    assert d.last()[1]["expectedVersion"] == 3


def test_notify_next_without_the_running_job_is_checked_then_canceled():
    d = Driver()
    d.start()
    d.do(d.m.message(wire.NotifyNext(wire.Execution("j1", 1, 2, "IN_PROGRESS")), d.now))
    assert d.actions == []
    d.do(d.m.message(wire.NotifyNext(None), d.now))
    topic, body = d.last()
    assert topic == f"{P}/j1/get" and body["executionNumber"] == 1
    actions = d.reply(f"{P}/j1/get/rejected", {"code": "ResourceNotFound"})
    assert actions == [StopHandler()] and d.m.state == CANCELING
    actions = d.exit(StepResult(exit_status=-15))
    assert isinstance(actions[0], RemoveRecord)
    assert all(body.get("status") is None for _, body in d.published())
    assert d.last()[0] == f"{P}/start-next"


def test_notify_next_with_another_head_but_ours_still_in_progress_goes_on():
    d = Driver()
    d.start()
    d.do(d.m.message(wire.NotifyNext(wire.Execution("j0", 1, 2, "IN_PROGRESS")), d.now))
    d.reply(f"{P}/j1/get/accepted", {"execution": d.execution(version=5)})
    assert d.m.state == RUNNING and d.m.current.version == 5


@pytest.mark.parametrize("code", ["InvalidStateTransition", "TerminalStateReached",
                                  "ResourceNotFound"])
def test_gone_on_a_final_update_drops_the_record(code):
    d = Driver()
    d.start()
    d.exit(StepResult(exit_status=0))
    actions = d.reply(f"{P}/j1/update/rejected", {"code": code})
    assert isinstance(actions[0], RemoveRecord) and d.m.state == STARTING


def test_gone_on_a_progress_update_stops_the_handler():
    d = Driver()
    d.start()
    d.do(d.m.progress_seen(HandlerResult(IN_PROGRESS, (("p", "1"),)), d.now))
    assert d.reply(f"{P}/j1/update/rejected", {"code": "InvalidStateTransition"}) == [
        StopHandler()]


def test_version_mismatch_retries_with_the_version_given_or_described():
    d = Driver()
    d.start()
    d.exit(StepResult(exit_status=0))
    d.reply(f"{P}/j1/update/rejected", {"code": "VersionMismatch", "executionState": {
        "status": "IN_PROGRESS", "versionNumber": 7}})
    assert d.last()[1]["expectedVersion"] == 7 and d.last()[1]["status"] == SUCCEEDED
    d.reply(f"{P}/j1/update/rejected", {"code": "VersionMismatch"})
    assert d.last()[0] == f"{P}/j1/get"
    d.reply(f"{P}/j1/get/accepted", {"execution": d.execution(version=9)})
    assert d.last()[1]["expectedVersion"] == 9


def test_throttling_backs_off_from_one_second_to_a_minute():
    d = Driver()
    d.up()
    delays = []
    for _ in range(9):
        d.reply(f"{P}/start-next/rejected", {"code": "RequestThrottled"})
        (wake,) = d.actions
        delays.append(wake.at - d.now)
        d.now = wake.at
        d.do(d.m.tick(d.now))
        assert d.last()[0] == f"{P}/start-next"
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert BACKOFF_CAP == 60


def test_no_reply_is_asked_again():
    d = Driver()
    d.up()
    d.now += REPLY_TIMEOUT
    d.do(d.m.tick(d.now))
    assert d.published() == []
    d.now += 1
    d.do(d.m.tick(d.now))
    assert d.last()[0] == f"{P}/start-next"


def test_stale_and_foreign_replies_are_ignored():
    d = Driver()
    d.up()
    assert d.reply(f"{P}/start-next/accepted", {"execution": d.execution()},
                   token="other") == []
    assert wire.parse("other", f"{P}/start-next/accepted", b"{}") is None
    assert d.m.state == STARTING


def test_after_a_restart_the_recorded_outcome_is_sent_first():
    d = Driver()
    record = Record("j1", 1, 2, phase="reporting", outcome=Outcome(FAILED, {
        "reason": "interrupted"}))
    assert d.m.recovered(record, d.now) == []  # not connected yet
    d.up()
    topic, body = d.last()
    assert topic == f"{P}/j1/update" and body["statusDetails"] == {"reason": "interrupted"}
    d.reply(f"{P}/j1/update/accepted", {})
    assert d.last()[0] == f"{P}/start-next"


def test_reconnect_while_running_checks_and_while_reporting_resends():
    d = Driver()
    d.start()
    d.do(d.m.link_down())
    d.up()
    assert d.last()[0] == f"{P}/j1/get"
    d.reply(f"{P}/j1/get/accepted", {"execution": d.execution()})
    d.exit(StepResult(exit_status=0))
    d.do(d.m.link_down())
    d.up()
    assert d.last()[1]["status"] == SUCCEEDED


def test_invalid_request_on_a_final_update_is_sent_once_with_only_its_reason():
    d = Driver()
    d.start()
    d.exit(StepResult(exit_status=2, stderr=b"x"))
    d.reply(f"{P}/j1/update/rejected", {"code": "InvalidRequest"})
    assert d.last()[1]["statusDetails"] == {"reason": "handler exited with status 2"}
    actions = d.reply(f"{P}/j1/update/rejected", {"code": "InvalidRequest"})
    assert isinstance(actions[0], RemoveRecord)


hostile_bodies = st.dictionaries(
    st.sampled_from(["execution", "code", "clientToken", "executionState", "jobId",
                     "message", "x"]),
    st.none() | st.integers() | st.text(max_size=5) | st.dictionaries(
        st.sampled_from(["jobId", "status", "versionNumber", "executionNumber",
                         "jobDocument", "approximateSecondsBeforeTimedOut"]),
        st.none() | st.integers(-2, 2 ** 64) | st.sampled_from(
            ["j1", "IN_PROGRESS", "QUEUED", "CANCELED", "../x"]) | st.just(DOC)),
    max_size=4)
topics = st.sampled_from([f"{P}/notify-next", f"{P}/start-next/accepted",
                          f"{P}/start-next/rejected", f"{P}/j1/update/accepted",
                          f"{P}/j1/update/rejected", f"{P}/j1/get/accepted",
                          f"{P}/j1/get/rejected", f"{P}/x/y/z", f"{P}/../update/accepted"])


@settings(max_examples=300)
@given(st.lists(st.tuples(topics, hostile_bodies, st.booleans()), max_size=12))
def test_any_sequence_of_cloud_messages_never_breaks_the_machine(messages):
    d = Driver()
    d.up()
    for topic, body, with_token in messages:
        if with_token and d.m.inflight is not None:
            body = dict(body, clientToken=d.m.inflight.token)
        try:
            event = wire.parse(T, topic, json.dumps(body).encode())
        except wire.BadMessage:
            continue
        if event is not None:
            d.do(d.m.message(event, d.now))
        if d.m.state == RUNNING and d.m.inflight is None:
            d.exit(StepResult(exit_status=0))
        d.now += 1
    assert d.m.state in (IDLE, STARTING, RUNNING, REJECTING, REPORTING, CANCELING)
    assert d.m.inflight is None or d.m.state != IDLE


def test_a_refused_describe_is_not_asked_again_at_once():
    d = Driver()
    d.start()
    d.do(d.m.message(wire.NotifyNext(None), d.now))
    actions = d.reply(f"{P}/j1/get/rejected", {"code": "InvalidRequest"})
    assert d.published() == [] and d.m.state == RUNNING
    assert actions == [] or all(isinstance(a, Wake) for a in actions)


def test_a_failed_publish_is_sent_again_after_a_backoff():
    d = Driver()
    d.start()
    d.exit(StepResult(exit_status=0))
    d.do(d.m.publish_failed(d.now))
    assert d.actions == [Wake(d.now + 1)]
    d.now += 1
    d.do(d.m.tick(d.now))
    assert d.last()[1]["status"] == SUCCEEDED
