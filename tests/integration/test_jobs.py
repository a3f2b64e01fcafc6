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
