"""defender/report.py: the report document per IOT_CORE.md 8.2, long and short names,
within AWS's limits."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from chariotd.defender import report
from chariotd.defender.custom import CustomMetric
from chariotd.defender.netstat import Connection, Counters, ListeningPort
from chariotd.defender.report import Measured, build_report

GOLDEN = Measured(
    tcp_ports=(ListeningPort(22, "eth0"), ListeningPort(24800, None)),
    udp_ports=(ListeningPort(67, "eth0"),),
    connections=(Connection("192.168.0.1:8000", 80, "eth0"), Connection("::1:443", 5, None)),
    traffic=Counters(29358693495, 26485035, 10013573555, 11382615),
    custom=(CustomMetric("cpu_temp", "number", 47),
            CustomMetric("fan_rpm", "number_list", (1200, 1180)),
            CustomMetric("users", "string_list", ("root", "pi")),
            CustomMetric("peers", "ip_list", ("172.0.0.0", "172.0.0.10"))))


def test_long_names_as_in_the_golden_example():
    payload, notes = build_report(1530304554, GOLDEN)
    assert notes == []
    assert json.loads(payload) == {
        "header": {"report_id": 1530304554, "version": "1.0"},
        "metrics": {
            "listening_tcp_ports": {"ports": [{"port": 22, "interface": "eth0"},
                                              {"port": 24800}], "total": 2},
            "listening_udp_ports": {"ports": [{"port": 67, "interface": "eth0"}], "total": 1},
            "network_stats": {"bytes_in": 29358693495, "bytes_out": 26485035,
                              "packets_in": 10013573555, "packets_out": 11382615},
            "tcp_connections": {"established_connections": {"connections": [
                {"remote_addr": "192.168.0.1:8000", "local_port": 80,
                 "local_interface": "eth0"},
                {"remote_addr": "::1:443", "local_port": 5}], "total": 2}}},
        "custom_metrics": {"cpu_temp": [{"number": 47}],
                           "fan_rpm": [{"number_list": [1200, 1180]}],
                           "users": [{"string_list": ["root", "pi"]}],
                           "peers": [{"ip_list": ["172.0.0.0", "172.0.0.10"]}]}}
    assert b" " not in payload  # compact


def _keys(value, skip_below=None):
    if isinstance(value, dict):
        for key, member in value.items():
            yield key
            if key != skip_below:
                yield from _keys(member, skip_below)
    elif isinstance(value, list):
        for member in value:
            yield from _keys(member, skip_below)


def test_short_names_are_all_short_and_custom_names_unchanged():
    doc = json.loads(build_report(7, GOLDEN, short_names=True)[0])
    assert doc["hed"] == {"rid": 7, "v": "1.0"}
    assert doc["met"]["tp"] == {"pts": [{"pt": 22, "if": "eth0"}, {"pt": 24800}], "t": 2}
    assert doc["met"]["tc"]["ec"]["cs"][0] == {"rad": "192.168.0.1:8000", "lp": 80,
                                               "li": "eth0"}
    assert doc["met"]["ns"] == {"bi": 29358693495, "bo": 26485035, "pi": 10013573555,
                                "po": 11382615}
    assert doc["cmet"]["fan_rpm"] == [{"number_list": [1200, 1180]}]
    assert set(_keys(doc, skip_below="cmet")) <= set(report.SHORT_NAMES.values())
    long_doc = json.loads(build_report(7, GOLDEN)[0])
    assert set(_keys(long_doc, skip_below="custom_metrics")) <= set(report.SHORT_NAMES)


def test_empty_measure_still_has_every_block_and_no_custom_metrics():
    doc = json.loads(build_report(1, Measured())[0])
    assert set(doc) == {"header", "metrics"}
    assert doc["metrics"]["listening_udp_ports"] == {"ports": [], "total": 0}
    assert doc["metrics"]["network_stats"] == {"bytes_in": 0, "bytes_out": 0,
                                               "packets_in": 0, "packets_out": 0}


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "1"])
def test_report_id_is_a_positive_integer(bad):
    with pytest.raises(ValueError):
        build_report(bad, Measured())


def test_long_lists_are_cut_and_totals_stay_true():
    ports = tuple(ListeningPort(p, "eth0") for p in range(1, 3001))
    payload, notes = build_report(1, Measured(tcp_ports=ports))
    doc = json.loads(payload)
    assert len(doc["metrics"]["listening_tcp_ports"]["ports"]) == report.MAX_LIST
    assert doc["metrics"]["listening_tcp_ports"]["total"] == 3000
    assert notes == ["report lists 1000 of 3000 listening TCP ports"]


def test_oversized_report_leaves_out_largest_custom_metric_then_halves_lists():
    big = CustomMetric("big", "string_list", tuple("x" * 256 for _ in range(1000)))
    small = CustomMetric("small", "number", 1)
    connections = tuple(Connection(f"203.0.113.{i % 250}:{1000 + i}", 40000 + i, "wlan0")
                        for i in range(1000))
    ports = tuple(ListeningPort(p, "wlan0") for p in range(1, 1001))
    measured = Measured(tcp_ports=ports, udp_ports=ports, connections=connections,
                        custom=(small, big))
    payload, notes = build_report(1, measured)
    doc = json.loads(payload)
    assert len(payload) <= report.MAX_REPORT_BYTES
    assert doc["custom_metrics"] == {"small": [{"number": 1}]}
    assert notes[0] == ("custom metric 'big' left out: custom metrics may take at most "
                        "65536 bytes of a report")
    assert any(" to stay within 131072 bytes" in note for note in notes)
    assert doc["metrics"]["tcp_connections"]["established_connections"]["total"] == 1000
    assert doc["metrics"]["listening_tcp_ports"]["total"] == 1000


ports = st.builds(ListeningPort, st.integers(1, 65535),
                  st.none() | st.text(min_size=1, max_size=15))
metrics = st.builds(
    CustomMetric, st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
    st.just("string_list"), st.lists(st.text(max_size=256), max_size=300).map(tuple))


@settings(max_examples=30, deadline=None)
@given(st.lists(ports, max_size=1500), st.lists(metrics, max_size=8),
       st.integers(300, 20000), st.booleans())
def test_never_over_the_limit(port_list, custom, max_bytes, short):
    measured = Measured(tcp_ports=tuple(port_list), udp_ports=tuple(port_list),
                        custom=tuple({m.name: m for m in custom}.values()))
    payload, _ = build_report(2, measured, short, max_bytes)
    assert len(payload) <= max_bytes
    doc = json.loads(payload)
    assert doc["hed" if short else "header"]["rid" if short else "report_id"] == 2
