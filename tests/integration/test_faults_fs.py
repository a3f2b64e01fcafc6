"""File-system faults (issue 8): the disk full while an outfile or a failed/ file is
written, an action directory turned read-only under the daemon, and wall-clock jumps.
Mounts need root (tests run as root here); each test skips with the reason when the
mount is not permitted."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

import fault_campaigns as campaigns
from support import Subscriber, wait_until, write_message


def run(*argv) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10)


@contextmanager
def mounted(target: Path, *mount_args):
    """`mount *MOUNT_ARGS TARGET` for the block; skips the test when not permitted."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    result = run("mount", *mount_args, str(target))
    if result.returncode != 0:
        pytest.skip(f"mount {' '.join(mount_args)} not permitted here: "
                    f"{result.stderr.strip()}")
    try:
        yield target
    finally:
        run("umount", "-l", str(target))


@contextmanager
def read_only(directory: Path):
    """DIRECTORY read-only in place (a read-only bind mount: chmod stops no root)."""
    with mounted(directory, "--bind", str(directory)):
        result = run("mount", "-o", "remount,ro,bind", str(directory))
        if result.returncode != 0:
            pytest.skip(f"read-only remount not permitted: {result.stderr.strip()}")
        yield directory


def fill(directory: Path) -> Path:
    """Write into DIRECTORY until the file system is full; returns the filler."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def service_def(svcs: Path, key: str, outfile: Path) -> None:
    svcs.mkdir(exist_ok=True)
    (svcs / f"{key}.js").write_text(campaigns.SERVICE.format(
        key=key, outfile=outfile, outformat="JSON", notified=svcs.parent / "notified"))


def test_disk_full_while_writing_an_outfile(sim, daemons, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    with mounted(full, "-t", "tmpfs", "-o", "size=64k", "tmpfs"):
        svcs, outfile = tmp_path / "svcs", full / "foo"
        service_def(svcs, "foo", outfile)
        daemon = daemons(["--clientid=dev1", f"--cacert={sim.cafile}",
                          f"--certstore={sim.device('dev1')}", f"--services=dev1:{svcs}"],
                         tmp_path)
        daemon.wait_log(r"shadow (fetched|created)")
        sim.set_desired("dev1", None, {"foo": {"n": 1}})
        wait_until(lambda: outfile.exists() and json.loads(outfile.read_text()) == {"n": 1})
        filler = fill(full)
        sim.set_desired("dev1", None, {"foo": {"n": 2, "pad": "x" * 2000}})
        daemon.wait_log(r"cannot write .*foo.*No space left on device")
        assert json.loads(outfile.read_text()) == {"n": 1}  # untouched, whole
        assert campaigns.temp_names(full) == []
        filler.unlink()  # space is back
        sim.set_desired("dev1", None, {"foo": {"n": 3}})
        wait_until(lambda: json.loads(outfile.read_text()).get("n") == 3,
                   message=lambda: "the next change written\n" + daemon.log())
        assert campaigns.temp_names(full) == []
        assert daemon.process.poll() is None


def test_disk_full_in_an_action_directory(sim, daemons, tmp_path):
    mqtt = tmp_path / "mqtt"
    mqtt.mkdir()
    sub = Subscriber("127.0.0.1", sim.port, sim.cafile, sim.paths.service_cert,
                     sim.paths.service_key, topics=("t/full/#",))
    with mounted(mqtt, "-t", "tmpfs", "-o", "size=64k", "tmpfs"):
        daemon = daemons(["--clientid=dev1", f"--cacert={sim.cafile}",
                          f"--certstore={sim.device('dev1')}", f"--messages={mqtt}"], tmp_path)
        daemon.wait_connected()
        (mqtt / "tmp" / "bad").write_text("{not json")
        (mqtt / "tmp" / "good").write_text(json.dumps({"topic": "t/full/1", "payload": "1"}))
        filler = fill(mqtt)
        os.rename(mqtt / "tmp" / "bad", mqtt / "new" / "bad")
        os.rename(mqtt / "tmp" / "good", mqtt / "new" / "good")
        wait_until(lambda: campaigns.files_in(mqtt / "new") == [],
                   message=lambda: "new/ empty\n" + daemon.log())
        assert campaigns.files_in(mqtt / "failed") == ["bad"]
        sub.wait_for(1)
        filler.unlink()
        write_message(mqtt, "after", json.dumps({"topic": "t/full/2", "payload": "2"}))
        sub.wait_for(2)
        assert daemon.process.poll() is None
    sub.close()


def test_action_directory_turned_read_only_under_the_daemon(sim, daemons, tmp_path):
    """new/ goes read-only (a file system remounted ro after errors): what was published
    cannot be removed, a bad file cannot be moved or deleted. Logged, the tree stays up
    (no crash loop), each message goes out once, and it all works again afterwards."""
    mqtt = tmp_path / "mqtt"
    sub = Subscriber("127.0.0.1", sim.port, sim.cafile, sim.paths.service_cert,
                     sim.paths.service_key, topics=("t/ro/#",))
    daemon = daemons(["--clientid=dev1", f"--cacert={sim.cafile}",
                      f"--certstore={sim.device('dev1')}", f"--messages={mqtt}"], tmp_path)
    daemon.wait_connected()
    watcher = campaigns.role_pid(daemon, f"chariotd: watch messages {mqtt}")
    os.kill(watcher, signal.SIGSTOP)  # the files wait in new/ while it goes read-only
    stopped = True
    try:
        write_message(mqtt, "bad", "{not json")
        for index in range(3):
            write_message(mqtt, f"m{index}", json.dumps({"topic": f"t/ro/{index}",
                                                         "payload": str(index)}))
        with read_only(mqtt / "new"):
            os.kill(watcher, signal.SIGCONT)
            stopped = False
            sub.wait_for(3)
            daemon.wait_log(r"m2: cannot remove it from new/")
            daemon.wait_log(r"bad: cannot keep it in failed/")
            assert campaigns.files_in(mqtt / "new") == ["bad", "m0", "m1", "m2"]
            new_file = mqtt / "new" / "m9"
            with pytest.raises(OSError):
                new_file.write_text("x")  # really read-only
        assert campaigns.role_pid(daemon, f"chariotd: watch messages {mqtt}") == watcher
        assert daemon.process.poll() is None and daemon.log().count("connected to") == 1
        write_message(mqtt, "after", json.dumps({"topic": "t/ro/after", "payload": "9"}))
        sub.wait_for(4)
        wait_until(lambda: "after" not in campaigns.files_in(mqtt / "new"))
        assert sorted(int(m.payload) for m in sub.received()) == [0, 1, 2, 9]  # once each
    finally:
        if stopped:
            os.kill(watcher, signal.SIGCONT)
        sub.close()


def test_read_only_action_directory_at_start_is_one_line_and_exit_2(sim, tmp_path):
    """At start the same directory is a configuration error: one line, exit 2, and
    runit's finish script waits 10 s before the next try (no tight loop)."""
    from support import CHARIOTD

    mqtt = tmp_path / "mqtt"
    for sub_dir in ("tmp", "new", "failed"):
        (mqtt / sub_dir).mkdir(parents=True)
    with read_only(mqtt / "new"):
        result = subprocess.run([CHARIOTD, "--clientid=dev1", f"--cacert={sim.cafile}",
                                 f"--certstore={sim.device('dev1')}", f"--messages={mqtt}"],
                                capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert result.stderr.strip() == f"chariotd: error: --messages: {mqtt}/new is not writable"


LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))), "")


@pytest.mark.slow
def test_wall_clock_jumps_do_not_stall_the_daemon(sim, daemons, tmp_path):
    """Timers use time.monotonic (the loop, paho's keep-alive, backoff, deadlines).
    The whole tree runs under libfaketime with only the wall clock faked, and that
    clock jumps ten years back, then twenty forward, while connected with a 2 s
    keep-alive: were any timer on the wall clock, the pings would stop after the jump
    back (the broker drops a client silent for 1.5 x keep-alive) or everything would
    fire at once after the jump forward. The notify command's `date` shows the jumps
    reached the daemon's processes."""
    import time

    if not LIBFAKETIME:
        pytest.skip("libfaketime is not installed (Debian package faketime; scripts/setup)")
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    svcs, out, stamps = tmp_path / "svcs", tmp_path / "out", tmp_path / "stamps"
    out.mkdir()
    svcs.mkdir()
    env = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(clock),
           "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    # Children get an allowlisted environment only: the notify command sets the fake
    # clock for itself, so that it sees the same time as the daemon.
    fake_clock = " ".join(f"{name}={value}" for name, value in env.items())
    (svcs / "foo.js").write_text(
        f"module.exports = {{ key: 'foo', outfile: '{out / 'foo'}', outformat: 'JSON', "
        f"notifycmd: '{fake_clock} date +%Y >> {stamps}' }}\n")
    mqtt = tmp_path / "mqtt"
    sub = Subscriber("127.0.0.1", sim.port, sim.cafile, sim.paths.service_cert,
                     sim.paths.service_key, topics=("t/clock/#",))
    daemon = daemons(["--clientid=dev1", f"--cacert={sim.cafile}",
                      f"--certstore={sim.device('dev1')}", f"--services=dev1:{svcs}",
                      f"--messages={mqtt}", "--keepalive=2"], tmp_path, env=env)
    daemon.wait_log(r"shadow (fetched|created)")
    this_year = int(time.strftime("%Y"))
    sent = 0
    for number, (offset, year) in enumerate((("-3650d", this_year - 10),
                                             ("+3650d", this_year + 10))):
        clock.write_text(offset + "\n")
        sim.set_desired("dev1", None, {"foo": {"n": number}})
        wait_until(lambda: stamps.exists() and stamps.read_text().split()[-1:] == [str(year)],
                   message=lambda: f"the notify command saw {year}\n" + daemon.log())
        time.sleep(5)  # 2.5 keep-alive periods: pings must go on by the monotonic clock
        write_message(mqtt, f"m{number}", json.dumps({"topic": f"t/clock/{number}",
                                                      "payload": str(number)}))
        sent += 1
        sub.wait_for(sent)
        assert json.loads((out / "foo").read_text()) == {"n": number}
    log = daemon.log()
    assert log.count("connected to") == 1, log  # never dropped, never reconnected
    assert "connection lost" not in log and "jammed" not in log and "timed out" not in log
    assert daemon.process.poll() is None
    sub.close()
