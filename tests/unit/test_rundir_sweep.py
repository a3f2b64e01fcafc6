"""Runtime directories of trees killed outright are removed by the next start
(supervisor.sweep_stale_rundirs): stale = nobody holds its lock."""

from __future__ import annotations

import fcntl
import os

from chariotd import supervisor


def test_only_unlocked_rundirs_are_swept(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    running, running_lock = supervisor.make_rundir()
    killed, killed_lock = supervisor.make_rundir()
    os.close(killed_lock)  # what a SIGKILL of the whole tree amounts to
    lockless = tmp_path / "chariotd-creating"
    lockless.mkdir()
    other = tmp_path / "unrelated"
    other.mkdir()
    (tmp_path / "chariotd-file").write_text("")

    assert supervisor.sweep_stale_rundirs(str(tmp_path)) == [os.path.basename(killed)]
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(running), "chariotd-creating", "unrelated", "chariotd-file"])
    # the running tree's lock is really held
    fd = os.open(os.path.join(running, supervisor.RUNDIR_LOCK), os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            raise AssertionError("the lock of a running tree could be taken")
        except BlockingIOError:
            pass
    finally:
        os.close(fd)
        os.close(running_lock)


def test_make_rundir_sweeps_first(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    stale, lock = supervisor.make_rundir()
    os.close(lock)
    fresh, lock = supervisor.make_rundir()
    os.close(lock)
    assert os.listdir(tmp_path) == [os.path.basename(fresh)]
    assert sorted(os.listdir(fresh)) == [supervisor.RUNDIR_LOCK]
    assert oct(os.stat(fresh).st_mode & 0o777) == oct(0o700)
