"""defender/collect.py: a whole report from this machine's /proc and a custom directory."""

import json
import socket

from chariotd.defender.collect import Collector
from chariotd.defender.report_id import ReportIds


def dev_table(eth0_in, eth0_out):
    return ("Inter-|   Receive                                                |  Transmit\n"
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes    "
            "packets errs drop fifo colls carrier compressed\n"
            "    lo: 9 9 0 0 0 0 0 0 9 9 0 0 0 0 0 0\n"
            f"  eth0: {eth0_in} 10 0 0 0 0 0 0 {eth0_out} 5 0 0 0 0 0 0\n")


def test_real_machine_report_with_custom_metrics(tmp_path):
    (tmp_path / "custom").mkdir()
    (tmp_path / "custom" / "cpu_temp").write_text("47")
    (tmp_path / "custom" / "broken").write_text("[")
    collector = Collector(ReportIds(tmp_path / "rid"), str(tmp_path / "custom"))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp:
        udp.bind(("::1", 0))
        built = collector.build()
        port = udp.getsockname()[1]
    doc = json.loads(built.payload)
    assert doc["header"]["report_id"] == built.report_id
    assert {"port": port, "interface": "lo"} in doc["metrics"]["listening_udp_ports"]["ports"]
    assert set(doc["metrics"]["network_stats"].values()) == {0}   # first report of a run
    assert doc["custom_metrics"] == {"cpu_temp": [{"number": 47}]}
    assert any("'broken' left out" in note for note in built.notes)


def test_deltas_count_from_the_last_delivered_report(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    for name in ("tcp", "tcp6", "udp", "udp6", "if_inet6"):
        (proc / name).write_text("")
    (proc / "dev").write_text(dev_table(1000, 100))
    collector = Collector(ReportIds(tmp_path / "rid"), short_names=True, proc_net=str(proc))
    first = collector.build()
    collector.delivered(first)
    (proc / "dev").write_text(dev_table(1500, 300))
    lost = collector.build()                       # never delivered
    (proc / "dev").write_text(dev_table(2000, 400))
    second = collector.build()
    assert json.loads(lost.payload)["met"]["ns"] == {"bi": 500, "bo": 200, "pi": 0, "po": 0}
    assert json.loads(second.payload)["met"]["ns"] == {"bi": 1000, "bo": 300, "pi": 0,
                                                       "po": 0}
    assert first.report_id < lost.report_id < second.report_id
