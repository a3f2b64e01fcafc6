"""The simulator's Device Defender intake (chariotd/sim/defender.py) against IOT_CORE.md
§8: the golden long- and short-name reports are accepted, each bad report gets its own
code, report_id must increase, and one report per interval per thing."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariotd.sim import cbor, defender
from chariotd.sim.defender import DefenderOptions, handle

GOLDEN = {
    "header": {"report_id": 1530304554, "version": "1.0"},
    "metrics": {
        "listening_tcp_ports": {"ports": [{"interface": "eth0", "port": 24800},
                                          {"interface": "eth0", "port": 22}], "total": 2},
        "listening_udp_ports": {"ports": [{"interface": "eth0", "port": 5353},
                                          {"interface": "eth0", "port": 67}], "total": 2},
        "network_stats": {"bytes_in": 29358693495, "bytes_out": 26485035,
                          "packets_in": 10013573555, "packets_out": 11382615},
        "tcp_connections": {"established_connections": {"connections": [
            {"local_interface": "eth0", "local_port": 80, "remote_addr": "192.168.0.1:8000"},
            {"local_port": 22, "remote_addr": "[2001:db8::1]:50000"}], "total": 2}}},
    "custom_metrics": {"cpu_temp": [{"number": 47}], "fan_rpm": [{"number_list": [1200, 1180.5]}],
                       "users": [{"string_list": ["root", "pi"]}],
                       "peers": [{"ip_list": ["172.0.0.0", "fe80::1"]}]}}
SHORT = {"hed": {"rid": 1530305228, "v": "1.0"},
         "met": {"tp": {"pts": [{"if": "eth0", "pt": 22}], "t": 1},
                 "up": {"pts": [], "t": 0}, "ns": {"bi": 1, "bo": 2, "pi": 3, "po": 4},
                 "tc": {"ec": {"cs": [{"rad": "10.0.0.1:443", "lp": 1, "li": "wlan0"}],
                               "t": 1}}},
         "cmet": {"load": [{"number": 0.5}]}}
NOW = 1_600_000_000
TOPIC = "$aws/things/T/defender/metrics"


def send(report, record=None, now=NOW, fmt="json", options=DefenderOptions()):
    payload = report if isinstance(report, bytes) else (
        cbor.dumps(report) if fmt == "cbor" else json.dumps(report).encode())
    return handle(record or {}, "T", fmt, payload, now, options)


def test_golden_reports_are_accepted_and_kept():
    record, [(topic, doc)] = send(GOLDEN)
    assert (topic, doc) == (f"{TOPIC}/json/accepted", {
        "thingName": "T", "reportId": 1530304554, "status": "ACCEPTED", "timestamp": NOW})
    record, [(topic, doc)] = send(SHORT, record, now=NOW + 300, fmt="cbor")
    assert (topic, doc["status"], doc["reportId"]) == (f"{TOPIC}/cbor/accepted", "ACCEPTED",
                                                       1530305228)
    assert [r["reportId"] for r in record["reports"]] == [1530304554, 1530305228]
    assert record["reports"][1] == {"reportId": 1530305228, "receivedAt": NOW + 300,
                                    "format": "cbor", "report": SHORT}
    json.dumps(record)


def mutated(path, value, base=GOLDEN):
    report = copy.deepcopy(base)
    target = report
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return report


@pytest.mark.parametrize("report,code", [
    (b"{", "InvalidPayload"), (b"\xff", "InvalidPayload"), (b"[1]", "InvalidPayload"),
    (mutated(["header"], KeyError), "MissingField"),
    (mutated(["header", "report_id"], KeyError), "MissingField"),
    (mutated(["header", "version"], KeyError), "MissingField"),
    ({"header": {"report_id": 1, "version": "1.0"}}, "MissingField"),
    (mutated(["header", "version"], "2.0"), "UnsupportedVersion"),
    (mutated(["header", "report_id"], 0), "InvalidReport"),
    (mutated(["header", "report_id"], "12"), "InvalidReport"),
    (mutated(["header", "report_id"], True), "InvalidReport"),
    (mutated(["extra"], 1), "InvalidReport"),
    (mutated(["metrics", "tp"], {}), "InvalidReport"),
    (mutated(["metrics", "listening_tcp_ports", "ports", 0, "port"], 0), "InvalidReport"),
    (mutated(["metrics", "listening_tcp_ports", "ports", 0, "port"], 70000), "InvalidReport"),
    (mutated(["metrics", "listening_udp_ports", "total"], -1), "InvalidReport"),
    (mutated(["metrics", "network_stats", "bytes_in"], 1.5), "InvalidReport"),
    (mutated(["metrics", "tcp_connections", "established_connections", "connections", 0,
              "remote_addr"], KeyError), "MissingField"),
    (mutated(["metrics", "tcp_connections", "established_connections", "connections", 0,
              "remote_addr"], "192.168.0.1"), "InvalidReport"),
    (mutated(["metrics", "tcp_connections", "established_connections", "connections", 0,
              "remote_addr"], "host:80"), "InvalidReport"),
    (mutated(["custom_metrics", "aws:x"], [{"number": 1}]), "InvalidReport"),
    (mutated(["custom_metrics", "cpu_temp"], {"number": 1}), "InvalidReport"),
    (mutated(["custom_metrics", "cpu_temp"], [{"number": 1}, {"number": 2}]), "InvalidReport"),
    (mutated(["custom_metrics", "cpu_temp"], [{"number": "1"}]), "InvalidReport"),
    (mutated(["custom_metrics", "cpu_temp"], [{"float": 1}]), "InvalidReport"),
    (mutated(["custom_metrics", "peers"], [{"ip_list": ["1.2.3"]}]), "InvalidReport"),
    (mutated(["custom_metrics", "users"], [{"string_list": [1]}]), "InvalidReport"),
    (mutated(["met", "tp", "pts", 0, "port"], 22, SHORT), "InvalidReport"),
])
def test_bad_reports_are_rejected_with_their_code(report, code):
    record, [(topic, doc)] = send(report)
    assert topic == f"{TOPIC}/json/rejected"
    assert (doc["status"], doc["statusDetails"]["ErrorCode"]) == ("REJECTED", code)
    assert doc["statusDetails"]["ErrorMessage"] and doc["timestamp"] == NOW
    assert "reports" not in record and record["rejected"][0]["code"] == code


def test_mixed_names_are_refused():
    report = {"header": {"report_id": 5, "version": "1.0"}, "met": {}}
    _, [(_, doc)] = send(report)
    assert "not mixed" in doc["statusDetails"]["ErrorMessage"]


def test_report_id_increases_and_one_report_per_interval():
    record, _ = send(GOLDEN)
    again = mutated(["header", "report_id"], 1530304554)
    record, [(_, doc)] = send(again, record, now=NOW + 600)
    assert (doc["statusDetails"]["ErrorCode"], doc["reportId"]) == (
        "ReportIdNotIncreasing", 1530304554)
    later = mutated(["header", "report_id"], 1530304555)
    record, [(_, doc)] = send(later, record, now=NOW + 299)
    assert doc["statusDetails"]["ErrorCode"] == "Throttled"
    record, [(_, doc)] = send(later, record, now=NOW + 300)
    assert doc["status"] == "ACCEPTED"
    quick = DefenderOptions(min_interval=0)
    record, [(_, doc)] = send(mutated(["header", "report_id"], 1530304556), record,
                              now=NOW + 300, options=quick)
    assert doc["status"] == "ACCEPTED"


def test_a_custom_metric_keeps_its_type():
    record, _ = send(GOLDEN)
    changed = mutated(["header", "report_id"], 1530304555)
    changed["custom_metrics"]["cpu_temp"] = [{"number_list": [1]}]
    _, [(_, doc)] = send(changed, record, now=NOW + 300)
    assert doc["statusDetails"]["ErrorCode"] == "InvalidReport"


def test_records_keep_the_last_reports_only():
    record, options = {}, DefenderOptions(min_interval=0, kept=3)
    for i in range(1, 6):
        record, _ = send(mutated(["header", "report_id"], i), record, options=options)
        record, _ = send(b"x", record, options=options)
    assert [r["reportId"] for r in record["reports"]] == [3, 4, 5]
    assert len(record["rejected"]) == 3


@given(st.binary(max_size=200), st.sampled_from(["json", "cbor"]))
def test_any_payload_gets_exactly_one_reply(payload, fmt):
    record, responses = handle({}, "T", fmt, payload, NOW)
    (topic, doc), = responses
    assert topic.startswith(f"{TOPIC}/{fmt}/")
    assert doc["status"] in ("ACCEPTED", "REJECTED")
    json.dumps(record)
    if doc["status"] == "REJECTED":
        assert doc["statusDetails"]["ErrorCode"] in defender.CODES
