"""A broker that does not play by the rules (issue 12, findings 8, 9, 11): no SUBACK,
a refused subscription, messages and packets larger than AWS allows, and a --cacert
that is or becomes unusable. The real tree against a real Mosquitto (or, for the
missing SUBACK, a TLS server that answers CONNECT and nothing else)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_certstore, start_broker
from chariotd.sim import pki
from scripted_broker import ScriptedBroker
from support import wait_until

FAST = {"CHARIOTD_BACKOFF_BASE": "0.02"}


def two_certificate_store(test_pki, path: Path, endpoint: str):
    first = pki.write_certstore(path, endpoint, *test_pki.ca.issue_client("dev1"))
    second = pki.write_certstore(path, endpoint, *test_pki.ca.issue_client("dev1"))
    os.symlink(first, path / "preferred")
    return first, second


def test_a_broker_that_never_sends_suback_is_a_counted_connection_failure(
        daemons, test_pki, tmp_path):
    mute = ScriptedBroker(test_pki)
    try:
        store = tmp_path / "certstore"
        first, second = two_certificate_store(test_pki, store, mute.endpoint)
        daemon = daemons(["--clientid=dev1", f"--cacert={test_pki.cafile}",
                          f"--certstore={store}", f"--updates=dev1:{tmp_path / 'upd'}"],
                         tmp_path, env=dict(FAST, CHARIOTD_DEADLINES="suback=0.3"))
        assert daemon.wait_exit(30) == 1
        log = daemon.log()
        assert "no SUBACK within 0.3 s; retrying in" in log
        assert "no SUBACK within 0.3 s; 6 connection failures in a row; preferred " \
               f"certificate is now {second[:12]}" in log
        assert mute.connections == 6
        assert os.readlink(store / "preferred") == second
    finally:
        mute.stop()


def test_a_refused_shadow_subscription_is_a_counted_connection_failure(
        daemons, test_pki, tmp_path):
    """A SUBACK of 0x80 for the shadow response filters. (Mosquitto 2.0's acl_file
    grants every SUBSCRIBE and filters delivery instead, so a scripted broker says it.)"""
    refusing = ScriptedBroker(test_pki, suback="refuse")
    try:
        store = make_certstore(test_pki, tmp_path / "certstore", refusing.endpoint)
        daemon = daemons(["--clientid=dev1", f"--cacert={test_pki.cafile}",
                          f"--certstore={store}", f"--updates=dev1:{tmp_path / 'upd'}"],
                         tmp_path, env=FAST)
        assert daemon.wait_exit(30) == 1
        log = daemon.log()
        assert "subscription to $aws/things/dev1/shadow/get/+ refused" in log
        assert ("the broker refused the subscription to the shadow responses; "
                "6 connection failures in a row; exiting") in log
        assert "subscribed to" not in log
        assert refusing.connections == 6
    finally:
        refusing.stop()


# -- inbound size -----------------------------------------------------------------------------

@pytest.fixture
def roomy_sim(tmp_path, monkeypatch):
    """chariotd-sim whose Mosquitto forwards messages of any size (a hostile broker)."""
    from chariotd.sim import simulator
    monkeypatch.setattr(simulator, "Mosquitto",
                        functools.partial(simulator.Mosquitto, message_size_limit=0))
    monkeypatch.setattr(simulator, "MAX_PACKET_SIZE", 0)  # none announced or enforced
    sim = simulator.Simulator(tmp_path / "sim", port=0).start()
    yield sim
    sim.stop()


def service_device(sim, tmp_path):
    svcs, out = tmp_path / "svcs", tmp_path / "out"
    svcs.mkdir()
    out.mkdir()
    (svcs / "foo.js").write_text(
        f"module.exports = {{ key: 'foo', outfile: '{out / 'foo'}', outformat: 'JSON', "
        f"informat: 'JSON', notifycmd: 'true' }}\n")
    return ["--clientid=dev1", f"--cacert={sim.cafile}", f"--certstore={sim.device('dev1')}",
            f"--services=dev1:{svcs}"], out / "foo"


def read_outfile(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def link_pid(daemon) -> int:
    for pid in daemon.children():
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"chariotd: link"):
                return pid
        except OSError:
            pass
    raise AssertionError("no link process")


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def delta(value) -> bytes:
    return json.dumps({"state": {"foo": value}, "version": 10**6}).encode()


DELTA_TOPIC = "$aws/things/dev1/shadow/update/delta"


def test_a_message_over_128_kib_is_dropped_by_the_link_and_the_link_keeps_working(
        daemons, roomy_sim, tmp_path):
    args, outfile = service_device(roomy_sim, tmp_path)
    roomy_sim.set_desired("dev1", None, {"foo": {"v": 1}})
    daemon = daemons(args, tmp_path)
    wait_until(lambda: read_outfile(outfile) == {"v": 1}, 15)
    before = outfile.read_bytes()
    big = delta({"blob": "x" * 140_000})
    assert 131072 < len(big) < 196611  # a whole PUBLISH the link reads, then drops
    roomy_sim.publish(DELTA_TOPIC, big)
    daemon.wait_log(rf"dropped a message of {len(big)} bytes on "
                    r"'\$aws/things/dev1/shadow/update/delta': more than 131072 bytes")
    roomy_sim.set_desired("dev1", None, {"foo": {"v": 2}})  # the link still works
    wait_until(lambda: read_outfile(outfile) == {"v": 2}, 15)
    log = daemon.log()
    assert "connection lost" not in log and "dropped the connection" not in log
    assert before != outfile.read_bytes() and b"blob" not in outfile.read_bytes()


def test_a_60_mb_publish_is_refused_unread_and_costs_the_link_no_memory(
        daemons, roomy_sim, tmp_path):
    args, outfile = service_device(roomy_sim, tmp_path)
    roomy_sim.set_desired("dev1", None, {"foo": {"v": 1}})
    daemon = daemons(args, tmp_path)
    wait_until(lambda: read_outfile(outfile) == {"v": 1}, 15)
    link = link_pid(daemon)
    peak_before = peak_rss_kib(link)
    huge = delta({"blob": "x" * (60 << 20)})
    roomy_sim.publish(DELTA_TOPIC, huge)
    daemon.wait_log(r"dropped the connection: the broker sent a packet of \d+ bytes "
                    r"\(type 0x30\), more than 196611; its body was not read", 20)
    daemon.wait_log(r"(?s)its body was not read.*link: connected to", 15)
    peak_after = peak_rss_kib(link)
    sys.stderr.write(f"link VmHWM before {peak_before} KiB, after {peak_after} KiB\n")
    assert peak_after - peak_before < 8 * 1024
    assert read_outfile(outfile) == {"v": 1}
    roomy_sim.set_desired("dev1", None, {"foo": {"v": 2}})  # reconnected and working
    wait_until(lambda: read_outfile(outfile) == {"v": 2}, 15)
    assert link_pid(daemon) == link  # the same link process: nothing crashed


# -- --cacert -------------------------------------------------------------------------------------

def run_chariotd(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chariotd.main", *args], capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize("content, expected", [
    (b"", "the file is empty"),
    (b"this is not PEM\n", "no usable PEM certificate"),
    (b"\xff\xfe binary", "not PEM (binary content)"),
])
def test_a_broken_cacert_at_start_exits_2_naming_the_file(test_pki, tmp_path, content,
                                                         expected):
    store = make_certstore(test_pki, tmp_path / "certstore", "127.0.0.1:1")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(content)
    result = run_chariotd("--clientid=dev1", f"--cacert={ca}", f"--certstore={store}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"chariotd: error: --cacert={ca}: {expected}")


def test_a_fifo_or_directory_as_cacert_exits_2_without_hanging(test_pki, tmp_path):
    store = make_certstore(test_pki, tmp_path / "certstore", "127.0.0.1:1")
    fifo = tmp_path / "ca.fifo"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        result = run_chariotd("--clientid=dev1", f"--cacert={path}", f"--certstore={store}")
        assert result.returncode == 2
        assert f"--cacert={path}: not a regular file" in result.stderr


def test_a_cacert_broken_at_run_time_never_moves_preferred(daemons, test_pki, broker,
                                                           tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(test_pki.cafile).read_bytes())
    store = tmp_path / "certstore"
    first, _ = two_certificate_store(test_pki, store, broker.endpoint)
    daemon = daemons(["--clientid=dev1", f"--cacert={ca}", f"--certstore={store}"],
                     tmp_path, env=FAST)
    daemon.wait_connected()
    ca.write_bytes(b"")  # a bad CA file pushed to the fleet
    broker.stop()        # the next connection has to load it
    wait_until(lambda: daemon.log().count("(not counted against the certificate)") >= 10, 60)
    log = daemon.log()
    assert f"--cacert={ca}: the file is empty; retrying in" in log
    assert "connection failures in a row" not in log
    assert daemon.process.poll() is None
    assert os.readlink(store / "preferred") == first


def test_a_server_certificate_the_cacert_does_not_verify_never_moves_preferred(
        daemons, test_pki, rogue_pki, tmp_path):
    rogue = start_broker(rogue_pki, tmp_path / "rogue-broker")
    try:
        store = tmp_path / "certstore"
        first, _ = two_certificate_store(test_pki, store, rogue.endpoint)
        daemon = daemons(["--clientid=dev1", f"--cacert={test_pki.cafile}",
                          f"--certstore={store}"], tmp_path, env=FAST)
        wait_until(lambda: daemon.log().count("(not counted against the certificate)") >= 8,
                   60)
        assert "certificate verify failed" in daemon.log()
        assert daemon.process.poll() is None
        assert os.readlink(store / "preferred") == first
    finally:
        rogue.stop()
