"""Device Defender through the real tree against chariotd-sim: real sockets the test
opens found in the report the sim accepted, traffic counted between reports, custom
metrics of each type (and hostile files left out), report ids across a restart, the
sim's rate limit logged as a rejection, and a link outage replacing reports rather than
queueing them.

CHARIOTD_DEFENDER_TIMING (defender/main.py) shortens the first delay and the interval
so that a test does not wait 300 s; the sim's rate limit is lowered to match
(DefenderOptions(min_interval=0)) except where the rejection is the point."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from chariotd.sim.defender import DefenderOptions
from support import children_of, cmdline, wait_until

THING = "dev1"
FAST = {"CHARIOTD_DEFENDER_TIMING": "first=0.5,interval=2", "CHARIOTD_BACKOFF_BASE": "0.2"}
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def dsim(tmp_path):
    """chariotd-sim taking a report as often as the tests send them."""
    from chariotd.sim import Simulator

    simulator = Simulator(tmp_path / "sim", port=0,
                          defender_options=DefenderOptions(min_interval=0)).start()
    yield simulator
    simulator.stop()


def args(sim, *extra):
    return [f"--clientid={THING}", f"--cacert={sim.cafile}",
            f"--certstore={sim.device(THING)}", f"--defender={THING}", *extra]


def reports(sim, count=1, timeout=20.0):
    """The reports the sim accepted, once there are at least COUNT."""
    return wait_until(lambda: (lambda r: r if len(r) >= count else None)(
        sim.defender_reports(THING)["reports"]), timeout, interval=0.25,
        message=f"{count} Defender reports at the sim")


def ports(report, block):
    return report["metrics"][block]["ports"]


def default_route_gateway():
    """(interface, gateway) of the IPv4 default route, from /proc/net/route."""
    with open("/proc/net/route") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == "00000000" and int(fields[3], 16) & 2:  # RTF_GATEWAY
                gateway = socket.inet_ntoa(int(fields[2], 16).to_bytes(4, "little"))
                return fields[0], gateway
    raise AssertionError("this test needs an IPv4 default route to send traffic on")


@pytest.fixture
def custom():
    """A custom metrics directory owned by uid 65534, in a folder other users can
    traverse (as /etc is), beside a root-only secret."""
    base = Path(tempfile.mkdtemp(prefix="chariotd-defender-"))
    os.chmod(base, 0o755)
    (base / "secret").write_text("424242\n")
    (base / "secret").chmod(0o600)
    (base / "custom").mkdir()
    os.chown(base / "custom", 65534, 65534)
    yield base / "custom"
    shutil.rmtree(base)


def test_sockets_connections_custom_metrics_and_traffic(daemons, dsim, tmp_path, custom):
    (custom / "cpu_temp").write_text("47.5")
    (custom / "fan_rpm").write_text("[1200, 1180]")
    (custom / "users").write_text('["root", "pi"]')
    (custom / "peers").write_text('["172.16.0.1", "fd00::1"]')
    (custom / "ips_as_strings").write_text('{"string_list": ["10.0.0.1"]}')
    (custom / "empty_ips").write_text('{"ip_list": []}')
    (custom / "bad_value").write_text('{"number": "hot"}')
    (custom / "not_json").write_text("{")
    # what the unprivileged owner of the directory can plant: a link to root's secret,
    # a FIFO no writer will ever open
    subprocess.run(NOBODY + ["ln", "-s", str(custom.parent / "secret"),
                             str(custom / "secret")], check=True, timeout=10)
    subprocess.run(NOBODY + ["mkfifo", str(custom / "fifo")], check=True, timeout=10)

    tcp4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    udp4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        tcp4.bind(("0.0.0.0", 0))
        tcp4.listen()
        tcp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        tcp6.bind(("::1", 0))
        tcp6.listen()
        udp4.bind(("127.0.0.1", 0))
        udp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        udp6.bind(("::", 0))
        daemon = daemons(args(dsim, f"--defender-custom={custom}"), tmp_path, env=FAST)
        first = reports(dsim)[0]["report"]

        assert {"port": tcp4.getsockname()[1]} in ports(first, "listening_tcp_ports")
        assert {"port": tcp6.getsockname()[1], "interface": "lo"} in ports(
            first, "listening_tcp_ports")
        assert {"port": udp4.getsockname()[1], "interface": "lo"} in ports(
            first, "listening_udp_ports")
        assert {"port": udp6.getsockname()[1]} in ports(first, "listening_udp_ports")
        # the link's own connection to the broker is an established connection
        remotes = [c["remote_addr"] for c in
                   first["metrics"]["tcp_connections"]["established_connections"]["connections"]]
        assert f"127.0.0.1:{dsim.port}" in remotes
        assert set(first["metrics"]["network_stats"].values()) == {0}  # a run's first

        assert first["custom_metrics"] == {
            "cpu_temp": [{"number": 47.5}], "fan_rpm": [{"number_list": [1200, 1180]}],
            "users": [{"string_list": ["root", "pi"]}],
            "peers": [{"ip_list": ["172.16.0.1", "fd00::1"]}],
            "ips_as_strings": [{"string_list": ["10.0.0.1"]}],
            "empty_ips": [{"ip_list": []}]}
        assert "424242" not in json.dumps(first)
        log = daemon.wait_log(r"report \d+ accepted by Device Defender") and daemon.log()
        for name in ("bad_value", "not_json", "secret", "fifo"):
            assert f"custom metric '{name}' left out" in log, name
        titles = [cmdline(pid) for pid in children_of(daemon.pid)]
        assert f"chariotd: defender {THING}" in titles

        # traffic sent now is in the deltas of the reports that follow
        interface, gateway = default_route_gateway()
        last = reports(dsim)[-1]["reportId"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            for _ in range(100):
                out.sendto(b"x" * 1000, (gateway, 9))  # discard
        newer = wait_until(lambda: (lambda r: r if len(r) >= 2 else None)(
            [r for r in dsim.defender_reports(THING)["reports"] if r["reportId"] > last]),
            20, interval=0.25, message="two reports after the traffic")
        stats = [r["report"]["metrics"]["network_stats"] for r in newer[:2]]
        assert sum(s["bytes_out"] for s in stats) >= 100 * 1000, (interface, stats)
        assert sum(s["packets_out"] for s in stats) >= 100, (interface, stats)
    finally:
        for sock in (tcp4, tcp6, udp4, udp6):
            sock.close()


def test_report_ids_keep_increasing_across_a_restart(daemons, dsim, tmp_path):
    certstore = dsim.device(THING)
    state = Path(certstore) / f".defender-{THING}.report-id"
    ahead = int(time.time() * 1000) + 10 ** 9  # a clock that was ahead once: ids never go back
    state.write_text(f"{ahead}\n")
    first = daemons(args(dsim), tmp_path, env=FAST)
    before = reports(dsim, 2)
    first.stop()
    assert [r["reportId"] for r in before[:2]] == [ahead + 1, ahead + 2]
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert int(state.read_text()) >= ahead + 2

    daemons(args(dsim), tmp_path, env=FAST)
    last = max(r["reportId"] for r in reports(dsim))
    after = wait_until(lambda: [r for r in dsim.defender_reports(THING)["reports"]
                                if r["reportId"] > last], 20, interval=0.25,
                       message="a report of the second run")
    assert after[0]["reportId"] == last + 1
    assert dsim.defender_reports(THING)["rejected"] == []  # never ReportIdNotIncreasing


def test_a_rejection_is_logged_with_its_code(daemons, sim, tmp_path):
    # the sim's default rate (one report per 300 s) against a 2 s interval
    daemon = daemons(args(sim), tmp_path, env=FAST)
    daemon.wait_log(r"report \d+ accepted by Device Defender", timeout=20)
    line = daemon.wait_log(r"report \d+ rejected by Device Defender: Throttled: .*",
                           timeout=20).group(0)
    assert "one report per 300 s" in line
    rejected = sim.defender_reports(THING)["rejected"]
    assert rejected and rejected[0]["code"] == "Throttled"


def test_reports_due_while_the_link_is_down_are_replaced_not_queued(daemons, dsim, tmp_path):
    # the default reconnect backoff (at least 1 s between attempts): the link gives up
    # after 6 failures, so the outage stays under 5 s; three 1 s intervals fall in it
    interval_ms = 1000
    env = {"CHARIOTD_DEFENDER_TIMING": "first=0.5,interval=1"}
    daemon = daemons(args(dsim), tmp_path, env=env)
    reports(dsim)
    dsim.broker.stop()
    daemon.wait_log(r"connection lost")
    down_since = time.monotonic()
    wait_until(lambda: time.monotonic() - down_since > 3.2, 10, interval=0.1,
               message="three intervals with the broker down")
    before = dsim.defender_reports(THING)["reports"]
    dsim.broker.start()
    after = reports(dsim, len(before) + 3, timeout=30)
    assert "exiting" not in daemon.log()
    ids = [r["reportId"] for r in after]
    # report ids are wall-clock ms: consecutive reports are an interval apart, so nothing
    # that fell due while the link was down came out in a burst when it came back
    gaps = [b - a for a, b in zip(ids, ids[1:])]
    assert all(gap >= interval_ms - 50 for gap in gaps), gaps
    assert ids[len(before)] - ids[len(before) - 1] >= 3 * interval_ms, ids
