"""The process tree: titles, one-for-all exits, parent death, signals, the runtime dir."""

from __future__ import annotations

import os
import signal
import stat
import time

from support import alive, cmdline, wait_until


def titles(daemon):
    return sorted(cmdline(pid) for pid in daemon.children())


def test_process_titles(daemons, base_args, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    daemon = daemons([*base_args, f"--messages={a}", f"--messages={b}"], tmp_path)
    daemon.wait_connected()
    assert cmdline(daemon.pid) == "chariotd"
    assert titles(daemon) == ["chariotd: link", f"chariotd: watch messages {a}",
                              f"chariotd: watch messages {b}"]


def test_a_child_killed_stops_the_tree_with_status_1(daemons, base_args, tmp_path):
    daemon = daemons([*base_args, f"--messages={tmp_path / 'm'}"], tmp_path)
    daemon.wait_connected()
    children = daemon.children()
    watcher = next(pid for pid in children if "watch messages" in cmdline(pid))
    killed_at = time.monotonic()
    os.kill(watcher, signal.SIGKILL)
    assert daemon.wait_exit(5) == 1
    assert time.monotonic() - killed_at < 2.0
    assert not any(alive(pid) for pid in children)
    assert "was killed by signal SIGKILL" in daemon.log()


def test_sigkill_of_the_parent_leaves_no_child(daemons, base_args, tmp_path):
    daemon = daemons([*base_args, f"--messages={tmp_path / 'm'}"], tmp_path)
    daemon.wait_connected()
    children = daemon.children()
    assert len(children) == 2
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.process.wait()
    wait_until(lambda: not any(alive(pid) for pid in children), timeout=2.0,
               message="children gone within 2 s of the parent's SIGKILL")


def test_sigterm_and_sigint_stop_everything_with_status_0(daemons, base_args, tmp_path):
    for signum in (signal.SIGTERM, signal.SIGINT):
        rundirs = tmp_path / f"run-{signum}"
        rundirs.mkdir()
        daemon = daemons([*base_args, f"--messages={tmp_path / 'm'}"], tmp_path,
                         env={"TMPDIR": str(rundirs)})
        daemon.wait_connected()
        (rundir,) = list(rundirs.iterdir())
        assert stat.S_IMODE(rundir.stat().st_mode) == 0o700
        assert sorted(os.listdir(rundir)) == ["link", "lock", "msg0"]  # mailboxes, lock
        children = daemon.children()
        daemon.signal(signum)
        assert daemon.wait_exit(5) == 0
        assert not any(alive(pid) for pid in children)
        assert list(rundirs.iterdir()) == []


def test_last_will_is_sent_when_the_link_dies(daemons, base_args, subscriber, tmp_path):
    daemon = daemons([*base_args, "--last-will-topic=status/dev1",
                      "--last-will-payload=offline"], tmp_path)
    daemon.wait_connected()
    link = next(pid for pid in daemon.children() if cmdline(pid) == "chariotd: link")
    os.kill(link, signal.SIGKILL)
    got = subscriber.wait_for(1, topic="status/dev1")
    assert got[0].payload == b"offline" and got[0].qos == 1


def test_no_last_will_on_an_orderly_stop(daemons, base_args, subscriber, tmp_path):
    daemon = daemons([*base_args, "--last-will-topic=status/dev1",
                      "--last-will-payload=offline"], tmp_path)
    daemon.wait_connected()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(5) == 0
    time.sleep(0.5)  # give a wrongly sent will the time to arrive
    assert subscriber.received("status/dev1") == []


def test_every_role_title(daemons, sim, tmp_path):
    svcs, upd, cmd, mqtt = (tmp_path / n for n in ("svcs", "upd", "cmd", "mqtt"))
    svcs.mkdir()
    daemon = daemons(["--clientid=dev1", f"--cacert={sim.cafile}",
                      f"--certstore={sim.device('dev1')}", f"--services=dev1:{svcs}",
                      f"--updates=dev1:{upd}", f"--commands={cmd}", f"--messages={mqtt}"],
                     tmp_path)
    daemon.wait_connected()
    assert titles(daemon) == sorted([
        "chariotd: link", "chariotd: applier", f"chariotd: watch messages {mqtt}",
        f"chariotd: watch updates dev1 {upd}", f"chariotd: watch commands {cmd}"])
