"""AWS IoT Jobs through the real tree against chariotd-sim: real handler programs in a
real handler directory, the sim's Jobs service as the cloud (IOT_CORE.md §7).

Short timeouts come from the flags (--job-timeout) and the sim's in-progress timer;
handlers that wait do so on a file the test creates (never a fixed sleep the test
depends on), or sleep long and are stopped by the test's subject (cancel, timeout)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from support import CHARIOTD, alive, wait_until

THING = "dev1"
FAST = {"CHARIOTD_BACKOFF_BASE": "0.2"}
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


class Handlers(type(Path())):
    """The handler directory, with `add(name, body)`."""

    def add(self, name, body, mode=0o755):
        path = self / name
        path.write_text("#!/bin/sh\n" + body)
        os.chmod(path, mode)
        return path


@pytest.fixture
def hdir():
    """A handler directory as a device has it: root's, 0755, in a root folder others
    may traverse; `hdir.add(name, body)` writes a /bin/sh handler."""
    base = Path(tempfile.mkdtemp(prefix="chariotd-jobs-"))
    os.chmod(base, 0o755)
    directory = Handlers(base / "handlers")
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(base)


def jobs_args(sim, directory, *extra):
    return [f"--clientid={THING}", f"--cacert={sim.cafile}",
            f"--certstore={sim.device(THING)}", f"--jobs={THING}:{directory}", *extra]


def execution(sim, job_id):
    return sim.describe_job(THING, job_id)


def final(sim, job_id, timeout=20.0):
    """JOB_ID's execution once it is in a terminal status."""
    return wait_until(lambda: (lambda e: e if e["status"] not in ("QUEUED", "IN_PROGRESS")
                               else None)(execution(sim, job_id)), timeout, interval=0.1,
                      message=f"job {job_id} to end")


def read_pid(path: Path, timeout=10.0) -> int:
    return int(wait_until(lambda: path.exists() and path.read_text().strip(), timeout,
                          message=f"a pid in {path}"))


def test_a_queue_made_offline_runs_in_order_both_forms(daemons, sim, hdir, tmp_path):
    """Three jobs queued while the device is offline start when it connects, one at a
    time, in the service's order: a legacy document that succeeds (its args exactly),
    a schema 1.0 one whose handler exits 3, one whose handler dies of a signal."""
    log = tmp_path / "order"
    hdir.add("ok", f'echo "$JOB_ID $#:$1:$2" >> {log}\necho done-ok >&2\n')
    hdir.add("fail", f'echo "$JOB_ID" >> {log}\necho broken >&2\nexit 3\n')
    hdir.add("die", f'echo "$JOB_ID" >> {log}\nkill -KILL $$\n')
    sim.create_job(THING, {"operation": "ok", "args": ["a b", "*"]}, job_id="j1")
    sim.create_job(THING, {"version": "1.0", "steps": [{"action": {
        "name": "f", "type": "runHandler", "input": {"handler": "fail"}}}]}, job_id="j2")
    sim.create_job(THING, {"operation": "die"}, job_id="j3")

    daemon = daemons(jobs_args(sim, hdir), tmp_path, env=FAST)
    first, second, third = final(sim, "j1"), final(sim, "j2"), final(sim, "j3")
    assert first["status"] == "SUCCEEDED", first
    assert first["statusDetails"]["stderr"] == "done-ok"
    assert second["status"] == "FAILED", second
    assert second["statusDetails"]["exitCode"] == "3"
    assert "exited with status 3" in second["statusDetails"]["reason"]
    assert "broken" in second["statusDetails"]["stderr"]
    assert third["status"] == "FAILED", third
    assert third["statusDetails"]["signal"] == "SIGKILL"
    assert "signal 9" in third["statusDetails"]["reason"]
    assert "exitCode" not in third["statusDetails"]
    assert log.read_text().splitlines() == ["j1 2:a b:*", "j2", "j3"]
    assert "illegal" not in daemon.log() and "crashed" not in daemon.log()


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cancel_stops_the_running_handler_group_and_sends_no_update(daemons, sim, hdir,
                                                                     tmp_path):
    """A forced cancel of the running execution: notify-next shows it gone, the
    handler's whole process group is stopped (a grandchild included), no update is sent
    for it (its version stays), and the next job runs."""
    pids = tmp_path / "pids"
    hdir.add("long", f'sleep 600 & echo $! > {pids}.child\necho $$ > {pids}\nwait\n')
    hdir.add("ok", "exit 0\n")
    sim.create_job(THING, {"operation": "long"}, job_id="long1")
    daemon = daemons(jobs_args(sim, hdir), tmp_path, env=FAST)
    leader = read_pid(pids)
    child = read_pid(Path(f"{pids}.child"))
    assert os.getpgid(child) == leader  # its own group, led by the handler
    canceled = sim.cancel_job("long1", force=True)
    version = execution(sim, "long1")["versionNumber"]
    wait_until(lambda: group_gone(leader), 15, message="the handler's group to be gone")
    assert not alive(child)
    sim.create_job(THING, {"operation": "ok"}, job_id="after")
    assert final(sim, "after")["status"] == "SUCCEEDED"
    gone = execution(sim, "long1")
    assert gone["status"] == "CANCELED", canceled
    assert gone["versionNumber"] == version  # nothing was sent for it after the cancel
    assert "statusDetails" not in gone or "reason" not in gone["statusDetails"]
    daemon.wait_log(r"stopping handler pid %d" % leader)


def test_stop_mid_handler_is_interrupted_and_a_reboot_result_survives(daemons, sim, hdir,
                                                                       tmp_path):
    """A tree stopped while a handler runs reports it FAILED "interrupted" at the next
    start (it is not run twice); a handler that recorded SUCCEEDED in $JOB_RESULT_FILE
    and was killed with everything (a reboot) is reported SUCCEEDED after the restart."""
    runs = tmp_path / "runs"
    pids = tmp_path / "pids"
    hdir.add("slow", f'echo run >> {runs}\necho $$ > {pids}\nsleep 600\n')
    hdir.add("reboot", f'printf \'{{"status":"SUCCEEDED","statusDetails":'
                       f'{{"rebooted":"yes"}}}}\' > "$JOB_RESULT_FILE"\n'
                       f'echo $$ > {pids}.reboot\nsleep 600\n')
    sim.create_job(THING, {"operation": "slow"}, job_id="slow1")
    daemon = daemons(jobs_args(sim, hdir), tmp_path, env=FAST)
    leader = read_pid(pids)
    daemon.stop()  # SIGTERM: the role stops the handler's group
    wait_until(lambda: group_gone(leader), 15, message="the handler stopped with the tree")
    assert execution(sim, "slow1")["status"] == "IN_PROGRESS"

    sim.create_job(THING, {"operation": "reboot"}, job_id="reboot1")
    daemon = daemons(jobs_args(sim, hdir), tmp_path, env=FAST)
    interrupted = final(sim, "slow1")
    assert interrupted["status"] == "FAILED"
    assert interrupted["statusDetails"]["reason"] == "interrupted"
    assert runs.read_text() == "run\n"  # never run twice
    handler = read_pid(Path(f"{pids}.reboot"))
    # the power goes: the tree and the handler die at once, nobody cleans up
    os.killpg(daemon.pid, signal.SIGKILL)
    os.killpg(handler, signal.SIGKILL)
    daemon.stop()
    assert execution(sim, "reboot1")["status"] == "IN_PROGRESS"
    daemons(jobs_args(sim, hdir), tmp_path, env=FAST)
    done = final(sim, "reboot1")
    assert done["status"] == "SUCCEEDED", done
    assert done["statusDetails"]["rebooted"] == "yes"


def test_progress_timeout_and_hostile_output(daemons, sim, hdir, tmp_path):
    """IN_PROGRESS written to $JOB_RESULT_FILE reaches the cloud with its statusDetails;
    megabytes of output with control characters never block the handler and end as a
    tail within AWS's limits; --job-timeout stops a handler: FAILED "timeout"."""
    go = tmp_path / "go"
    hdir.add("progress", (
        'printf \'{"status":"IN_PROGRESS","statusDetails":{"phase":"download","pct":"50"}}\''
        ' > "$JOB_RESULT_FILE"\n'
        f'while [ ! -e {go} ]; do sleep 0.05; done\n'
        'head -c 3000000 /dev/zero | tr "\\0" "\\033" >&2\n'
        'printf "\\001\\tend\\n" >&2\n'
        'head -c 3000000 /dev/zero\n'))
    hdir.add("stuck", "sleep 600\n")
    sim.create_job(THING, {"operation": "progress", "includeStdOut": "true"}, job_id="p1")
    sim.create_job(THING, {"operation": "stuck"}, job_id="t1")
    daemons(jobs_args(sim, hdir, "--job-timeout=3"), tmp_path, env=FAST)
    shown = wait_until(lambda: (lambda e: e if (e.get("statusDetails") or {}).get("pct")
                                else None)(execution(sim, "p1")), 10,
                       message="the handler's progress at the cloud")
    assert shown["status"] == "IN_PROGRESS"
    assert shown["statusDetails"] == {"phase": "download", "pct": "50"}
    go.touch()
    done = final(sim, "p1")
    assert done["status"] == "SUCCEEDED", done
    details = done["statusDetails"]
    for key, value in details.items():
        assert 1 <= len(value.encode("utf-16-le")) // 2 <= 1024, key
        assert not any(ord(c) < 0x20 or ord(c) == 0x7f for c in value), (key, value[:80])
    assert details["stderr"].endswith("\\x01\\tend")
    assert details["stdout"].endswith("\\x00")
    timed_out = final(sim, "t1", timeout=20)
    assert timed_out["status"] == "FAILED"
    assert timed_out["statusDetails"]["reason"] == "timeout"


def test_untrusted_handler_and_run_command_fail_with_a_reason(daemons, sim, hdir, tmp_path):
    """A handler owned by another user, or writable by others, a runCommand step (off
    by default), a path other than "default": each job FAILED or REJECTED with its
    reason; nothing of them runs; the role goes on."""
    ran = tmp_path / "ran"
    hdir.add("theirs", f"touch {ran}\n")
    os.chown(hdir / "theirs", 65534, 65534)
    hdir.add("writable", f"touch {ran}\n", mode=0o777)
    hdir.add("ok", "exit 0\n")
    sim.create_job(THING, {"operation": "theirs"}, job_id="u1")
    sim.create_job(THING, {"operation": "writable"}, job_id="u2")
    sim.create_job(THING, {"version": "1.0", "steps": [{"action": {
        "name": "cmd", "type": "runCommand", "input": {"command": f"touch,{ran}"}}}]},
        job_id="u3")
    sim.create_job(THING, {"operation": "ok", "path": "/tmp"}, job_id="u4")
    sim.create_job(THING, {"operation": "ok"}, job_id="u5")
    daemons(jobs_args(sim, hdir), tmp_path, env=FAST)
    theirs, writable, command, path = (final(sim, j) for j in ("u1", "u2", "u3", "u4"))
    assert final(sim, "u5")["status"] == "SUCCEEDED"
    assert theirs["status"] == "FAILED"
    assert "not trusted" in theirs["statusDetails"]["reason"]
    assert "uid 65534" in theirs["statusDetails"]["reason"]
    assert writable["status"] == "FAILED"
    assert "0777" in writable["statusDetails"]["reason"]
    assert command["status"] == "FAILED"
    assert "--jobs-allow-commands" in command["statusDetails"]["reason"]
    assert path["status"] == "REJECTED", path
    assert not ran.exists()


def test_untrusted_handler_directory_is_a_configuration_error(sim, hdir, tmp_path):
    os.chmod(hdir, 0o777)
    result = subprocess.run([CHARIOTD, *jobs_args(sim, hdir)], capture_output=True,
                            text=True, timeout=20)
    assert result.returncode == 2, result.stderr
    assert "not trusted" in result.stderr and "0777" in result.stderr
    os.chmod(hdir, 0o755)
    os.chown(hdir.parent, 65534, 65534)  # a folder above it another user owns
    result = subprocess.run([CHARIOTD, *jobs_args(sim, hdir)], capture_output=True,
                            text=True, timeout=20)
    assert result.returncode == 2, result.stderr
    assert "above it" in result.stderr


def test_throttled_requests_are_retried(daemons, sim, hdir, tmp_path):
    hdir.add("ok", "exit 0\n")
    sim.inject_jobs_error(THING, "RequestThrottled", count=3)
    sim.create_job(THING, {"operation": "ok"}, job_id="th1")
    daemon = daemons(jobs_args(sim, hdir), tmp_path, env=FAST)
    assert final(sim, "th1", timeout=30)["status"] == "SUCCEEDED"
    assert "RequestThrottled" in daemon.log()
