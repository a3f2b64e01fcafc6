"""The crash-safe record: written before a handler runs, recovered after a restart."""

import json
import os
import stat

import pytest

from chariotd.jobs.details import FAILED, SUCCEEDED, Outcome
from chariotd.jobs.state import (REPORTING, RUNNING, ExecutionState, Record,
                                 state_dir_problem)


@pytest.fixture
def state(tmp_path):
    directory = tmp_path / ".chariotd-jobs"
    assert state_dir_problem(str(directory)) is None
    return ExecutionState(str(directory), "T1")


def test_state_dir_is_made_0711_and_must_be_ours(tmp_path):
    directory = tmp_path / "s"
    assert state_dir_problem(str(directory)) is None
    assert stat.S_IMODE(os.lstat(directory).st_mode) == 0o711
    os.chown(directory, 65534, 65534)
    assert "owned by uid 65534" in state_dir_problem(str(directory))
    link = tmp_path / "link"
    os.symlink(tmp_path, link)
    assert "symbolic link" in state_dir_problem(str(link))


def test_record_round_trip(state):
    record = Record("job-1", 3, 2, step=1)
    state.write(record)
    assert stat.S_IMODE(os.stat(state.record_path).st_mode) == 0o600
    assert state.read() == record
    done = record.reporting(Outcome(SUCCEEDED, {"reason": "ok"}))
    state.write(done)
    assert state.read() == done


def test_no_record_means_nothing_to_recover(state):
    state.prepare_work({"operation": "x"})
    assert state.recover() is None
    assert not os.path.exists(state.work_dir)


def test_running_without_result_is_failed_interrupted(state):
    state.prepare_work({"operation": "x"})
    state.write(Record("job-1", 1, 2))
    record = state.recover()
    assert record.phase == REPORTING
    assert record.outcome == Outcome(FAILED, {"reason": "interrupted"})
    assert state.read() == record  # durable before it is sent


def test_running_with_a_final_result_sends_that_result(state):
    state.prepare_work({"operation": "reboot"})
    state.write(Record("job-1", 1, 2))
    with open(state.result_path, "w") as f:
        json.dump({"status": "SUCCEEDED", "statusDetails": {"boot": "2"}}, f)
    record = state.recover()
    assert record.outcome.status == SUCCEEDED and record.outcome.details["boot"] == "2"


def test_reporting_record_is_sent_again_unchanged(state):
    record = Record("job-1", 1, 4, phase=REPORTING, outcome=Outcome(FAILED, {"reason": "x"}))
    state.write(record)
    with open(state.work_dir + "-unrelated", "w"):
        pass
    assert state.recover() == record


@pytest.mark.parametrize("content", [b"", b"{", b'{"jobId": "j"}', b"[]",
                                     b'{"jobId": "j", "executionNumber": 1, '
                                     b'"versionNumber": 1, "phase": "reporting"}'])
def test_unusable_record_is_removed(state, content):
    with open(state.record_path, "wb") as f:
        f.write(content)
    assert state.recover() is None
    assert not os.path.exists(state.record_path)


def test_hostile_result_files_are_not_followed(state, tmp_path):
    state.prepare_work({"operation": "x"}, owner=(65534, 65534))
    assert os.stat(state.work_dir).st_uid == 65534
    assert os.stat(state.document_path).st_uid == 65534
    assert stat.S_IMODE(os.stat(state.document_path).st_mode) == 0o600
    secret = tmp_path / "secret"
    secret.write_text('{"status": "SUCCEEDED", "statusDetails": {"k": "secret"}}')
    for plant in (lambda p: os.symlink(secret, p), lambda p: os.link(secret, p),
                  lambda p: os.mkfifo(p)):
        plant(state.result_path)
        notes = []
        assert state.handler_result(notes) is None and notes
        os.unlink(state.result_path)


def test_remove_takes_record_and_work(state):
    state.prepare_work({"operation": "x"})
    os.makedirs(os.path.join(state.work_dir, "deep", "er"))
    os.symlink("/etc", os.path.join(state.work_dir, "deep", "etc"))
    state.write(Record("j", 1, 1))
    state.remove()
    assert not os.path.exists(state.record_path) and not os.path.exists(state.work_dir)
    assert os.path.exists("/etc/passwd")


def test_a_handler_that_outlived_a_crash_is_killed_at_recovery(state):
    import subprocess
    from chariotd.jobs.state import handler_identity
    leader = subprocess.Popen(["/bin/sh", "-c", "trap '' TERM; sleep 300 & wait"],
                              start_new_session=True)
    try:
        identity = handler_identity(leader.pid)
        state.write(Record("j", 1, 1, handler=identity))
        record = state.recover()
        assert record.outcome.details == {"reason": "interrupted"}
        assert leader.wait(timeout=5) == -9
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()
    # a record naming a process that is gone, or the same pid started later, kills nothing
    stale = (identity[0], identity[1], identity[2] - 1)
    state.write(Record("j", 1, 1, handler=stale))
    assert state.recover().outcome.status == FAILED
    assert handler_identity(os.getpid())[1] == os.getpid()
