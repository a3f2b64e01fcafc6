"""One thing's jobs end to end inside the role's loop: a scripted cloud answers the
machine's requests, real handlers run from a real handler directory, the real record."""

import json
import os
import time

import pytest

from chariotd.jobs import wire
from chariotd.jobs.machine import ThingJobs
from chariotd.jobs.state import ExecutionState, state_dir_problem
from chariotd.jobs.thing import ThingWorker
from chariotd.kernel.loop import Loop

T = "dev1"
P = f"$aws/things/{T}/jobs"


class Cloud:
    """Answers start-next from a queue, accepts updates, rejects describes of gone jobs."""

    def __init__(self, loop, queue):
        self.loop = loop
        self.queue = list(queue)  # (job_id, document)
        self.updates = []  # (job_id, status, details)
        self.gone = set()
        self.worker = None
        self.version = {}

    def send(self, topic, body):
        payload = json.dumps(dict(body, timestamp=1)).encode()
        self.loop.call_later(0, lambda: self.worker.message(topic, payload))

    def publish(self, topic, payload):
        body = json.loads(payload)
        token = body.get("clientToken")
        if topic == f"{P}/start-next":
            if not self.queue:
                return self.send(f"{P}/start-next/accepted", {"clientToken": token})
            job_id, document = self.queue[0]
            self.version.setdefault(job_id, 2)
            return self.send(f"{P}/start-next/accepted", {"clientToken": token, "execution": {
                "jobId": job_id, "status": "IN_PROGRESS", "executionNumber": 1,
                "versionNumber": self.version[job_id], "jobDocument": document}})
        job_id, api = topic[len(P) + 1:].split("/")
        if job_id in self.gone:
            return self.send(f"{P}/{job_id}/{api}/rejected",
                             {"clientToken": token, "code": "ResourceNotFound"})
        if api == "update":
            self.updates.append((job_id, body["status"], body["statusDetails"]))
            self.version[job_id] = self.version.get(job_id, 2) + 1
            if body["status"] != "IN_PROGRESS":
                self.queue = [q for q in self.queue if q[0] != job_id]
        self.send(f"{P}/{job_id}/{api}/accepted", {"clientToken": token})

    def finals(self):
        return [(j, s, d) for j, s, d in self.updates if s != "IN_PROGRESS"]


def gone_or_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
def handlers(tmp_path):
    directory = tmp_path / "handlers"
    directory.mkdir()
    os.chmod(directory, 0o755)

    def add(name, body, mode=0o755):
        path = directory / name
        path.write_text("#!/bin/sh\n" + body)
        os.chmod(path, mode)
    add.dir = directory
    return add


def worker_for(handlers, queue, **options):
    loop = Loop()
    state_dir = str(handlers.dir / ".chariotd-jobs")
    assert state_dir_problem(state_dir) is None
    cloud = Cloud(loop, queue)
    worker = ThingWorker(loop, T, str(handlers.dir), ExecutionState(state_dir, T),
                         ThingJobs(T, options.pop("timeout", 60.0), token_prefix="x"),
                         cloud.publish, grace=options.pop("grace", 1.0), **options)
    cloud.worker = worker
    return loop, cloud, worker


def run_until(loop, done, limit=15.0):
    deadline = time.monotonic() + limit

    def check():
        if done() or time.monotonic() > deadline:
            loop.stop()
        else:
            loop.call_later(0.02, check)
    loop.call_later(0, check)
    loop.run()
    assert done(), "not reached in time"


def test_queue_runs_in_order_with_progress(handlers):
    handlers("ok.sh", 'echo "{\\"status\\":\\"IN_PROGRESS\\",\\"statusDetails\\":'
                      '{\\"progress\\":\\"$1\\"}}" > "$JOB_RESULT_FILE"\n'
                      'sleep 1.3\necho done; echo warn >&2\n')
    handlers("bad.sh", "exit 7\n")
    queue = [("a", {"operation": "ok.sh", "args": ["50%"]}),
             ("b", {"operation": "bad.sh"}),
             ("c", {"operation": "ok.sh", "args": ["x"], "includeStdOut": "true"})]
    loop, cloud, worker = worker_for(handlers, queue)
    worker.start()
    worker.link_up()
    # The record goes once the last update is accepted, a pass after it was sent.
    run_until(loop, lambda: len(cloud.finals()) == 3
              and not os.path.exists(worker.state.record_path))
    assert [(j, s) for j, s, _ in cloud.finals()] == [("a", "SUCCEEDED"), ("b", "FAILED"),
                                                       ("c", "SUCCEEDED")]
    a, b, c = (d for _, _, d in cloud.finals())
    assert a["stderr"] == "warn" and "stdout" not in a and c["stdout"] == "done"
    assert b == {"reason": "handler exited with status 7", "exitCode": "7"}
    assert ("a", "IN_PROGRESS", {"progress": "50%"}) in cloud.updates
    assert not os.path.exists(worker.state.record_path)


def test_untrusted_handler_and_run_command_fail_with_a_reason(handlers):
    handlers("loose.sh", "exit 0\n", mode=0o777)
    queue = [("a", {"operation": "loose.sh"}),
             ("b", {"version": "1.0", "steps": [{"action": {
                 "name": "c", "type": "runCommand", "input": {"command": "true"}}}]}),
             ("c", {"operation": "missing.sh"}),
             ("d", {"operation": "x", "path": "/bin"})]
    loop, cloud, worker = worker_for(handlers, queue)
    worker.link_up()
    run_until(loop, lambda: len(cloud.finals()) == 4)
    (_, s1, d1), (_, s2, d2), (_, s3, d3), (_, s4, d4) = cloud.finals()
    assert s1 == "FAILED" and "not writable by group or others" in d1["reason"]
    assert s2 == "FAILED" and "--jobs-allow-commands" in d2["reason"]
    assert s3 == "FAILED" and "no handler" in d3["reason"]
    assert s4 == "REJECTED" and "path" in d4["reason"]


def test_cancel_stops_the_handler_group_and_sends_nothing(handlers, tmp_path):
    pidfile = tmp_path / "pid"
    handlers("long.sh", f"sleep 300 & echo $! > {pidfile}\nwait\n")
    loop, cloud, worker = worker_for(handlers, [("a", {"operation": "long.sh"})])
    worker.link_up()
    canceled = []

    def cancel_once_running():
        if not canceled and pidfile.exists() and pidfile.read_text().strip():
            canceled.append(int(pidfile.read_text()))
            cloud.gone.add("a")
            cloud.queue = []
            cloud.send(f"{P}/notify-next", {})
        return canceled and worker.handler is None and worker.jobs.state == "idle"

    run_until(loop, cancel_once_running)
    background = canceled[0]
    assert cloud.updates == []
    deadline = time.monotonic() + 5
    while gone_or_zombie(background) is False and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone_or_zombie(background)
    assert not os.path.exists(worker.state.record_path)


def test_restart_mid_handler_is_interrupted_unless_it_reported(handlers):
    handlers("reboot.sh", 'echo \'{"status":"SUCCEEDED","statusDetails":{"boot":"1"}}\''
                          ' > "$JOB_RESULT_FILE"\nsleep 300\n')
    handlers("hang.sh", "sleep 300\n")
    for handler, status, details in (("reboot.sh", "SUCCEEDED", {"boot": "1"}),
                                     ("hang.sh", "FAILED", {"reason": "interrupted"})):
        queue = [("a", {"operation": handler})]
        loop, cloud, worker = worker_for(handlers, queue)
        worker.link_up()
        run_until(loop, lambda: worker.handler is not None and (
            handler == "hang.sh" or os.path.exists(worker.state.result_path)))
        worker.shutdown()  # the tree stops mid-handler
        assert os.path.exists(worker.state.record_path)
        loop, cloud, worker = worker_for(handlers, queue)  # the next start
        worker.start()
        worker.link_up()
        run_until(loop, lambda: cloud.finals())
        (job, sent_status, sent_details), = cloud.finals()  # never run twice
        assert (job, sent_status) == ("a", status)
        assert details.items() <= sent_details.items()
        assert not os.path.exists(worker.state.record_path)


def test_timeout_is_failed_timeout(handlers):
    handlers("slow.sh", "trap '' TERM; sleep 300\n")
    loop, cloud, worker = worker_for(handlers, [("a", {"operation": "slow.sh"})],
                                     timeout=0.5, grace=0.5)
    worker.link_up()
    run_until(loop, lambda: cloud.finals())
    assert cloud.finals() == [("a", "FAILED", {"reason": "timeout"})]


def test_a_record_that_cannot_be_written_means_the_handler_never_runs(handlers, tmp_path):
    marker = tmp_path / "ran"
    handlers("h.sh", f"touch {marker}\n")
    loop, cloud, worker = worker_for(handlers, [("a", {"operation": "h.sh"})])
    worker.state.record_path = str(tmp_path / "missing" / "dev1.json")
    worker.link_up()
    run_until(loop, lambda: cloud.finals())
    (_, status, details), = cloud.finals()
    assert status == "FAILED" and "cannot record the execution" in details["reason"]
    assert not marker.exists()


def test_hostile_cloud_messages_are_logged_and_ignored(handlers, caplog):
    loop, cloud, worker = worker_for(handlers, [])
    assert worker.message(f"{P}/notify-next", b"\xff") is True
    assert worker.message(f"{P}/start-next/accepted", b'{"execution": 5}') is True
    assert worker.message("other/topic", b"{}") is False
    assert "ignored a jobs message" in caplog.text
    assert wire.subscriptions(T)
