"""The Device Defender report document (IOT_CORE.md 8.2), pure.

`build_report` turns what was measured into the JSON payload for
`$aws/things/THING/defender/metrics/json`: `header` (`report_id`, `version` "1.0"),
`metrics` (all four blocks, always present, as AWS's client sends them) and, when there
are any, `custom_metrics` (each value a one-element array of its typed value). Long
names, or all short names (`--defender-short-names`); custom metric names and their
typed keys are the same in both.

Within AWS's limits, never sent beyond them: compact JSON of at most MAX_REPORT_BYTES
(AWS's 128 KB payload limit), at most MAX_LIST entries in a port or connection list.
What does not fit is trimmed, each trim a note for the log: lists are cut to MAX_LIST;
custom metrics take at most half the report, smallest first (a metric is all or
nothing; the largest are left out); then, while the document is too large, the longest
port or connection list is halved. A
`total` always counts everything found, so a trimmed list still reports the true number
of listening ports or connections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import List, Sequence, Tuple

from .custom import CustomMetric
from .netstat import Connection, Counters, ListeningPort

VERSION = "1.0"
MAX_REPORT_BYTES = 128 * 1024
MAX_LIST = 1000

SHORT_NAMES = {
    "header": "hed", "report_id": "rid", "version": "v", "metrics": "met",
    "custom_metrics": "cmet", "listening_tcp_ports": "tp", "listening_udp_ports": "up",
    "ports": "pts", "port": "pt", "interface": "if", "total": "t",
    "network_stats": "ns", "bytes_in": "bi", "bytes_out": "bo", "packets_in": "pi",
    "packets_out": "po", "tcp_connections": "tc", "established_connections": "ec",
    "connections": "cs", "remote_addr": "rad", "local_port": "lp",
    "local_interface": "li",
}


@dataclass(frozen=True)
class Measured:
    """What one report carries, before naming and limits."""
    tcp_ports: Sequence[ListeningPort] = ()
    udp_ports: Sequence[ListeningPort] = ()
    connections: Sequence[Connection] = ()
    traffic: Counters = field(default_factory=Counters)
    custom: Sequence[CustomMetric] = ()
    # true counts, when the lists above were cut before (-1: their lengths)
    tcp_total: int = -1
    udp_total: int = -1
    connection_total: int = -1

    def totals(self) -> "Measured":
        """The same, with every total set from the lists if not set yet."""
        return replace(
            self,
            tcp_total=self.tcp_total if self.tcp_total >= 0 else len(self.tcp_ports),
            udp_total=self.udp_total if self.udp_total >= 0 else len(self.udp_ports),
            connection_total=(self.connection_total if self.connection_total >= 0
                              else len(self.connections)))


def _namer(short_names: bool):
    if short_names:
        return SHORT_NAMES.__getitem__
    return lambda name: name


def document(report_id: int, measured: Measured, short_names: bool = False) -> dict:
    """The report as a JSON-ready dict (no limits applied)."""
    if not isinstance(report_id, int) or isinstance(report_id, bool) or report_id < 1:
        raise ValueError("report_id is a positive integer")
    n = _namer(short_names)
    m = measured.totals()

    def ports(entries, total):
        listed = []
        for entry in entries:
            item = {n("port"): entry.port}
            if entry.interface is not None:
                item[n("interface")] = entry.interface
            listed.append(item)
        return {n("ports"): listed, n("total"): total}

    connections = []
    for entry in m.connections:
        item = {n("remote_addr"): entry.remote_addr, n("local_port"): entry.local_port}
        if entry.local_interface is not None:
            item[n("local_interface")] = entry.local_interface
        connections.append(item)
    doc = {
        n("header"): {n("report_id"): report_id, n("version"): VERSION},
        n("metrics"): {
            n("listening_tcp_ports"): ports(m.tcp_ports, m.tcp_total),
            n("listening_udp_ports"): ports(m.udp_ports, m.udp_total),
            n("network_stats"): {
                n("bytes_in"): m.traffic.bytes_in, n("bytes_out"): m.traffic.bytes_out,
                n("packets_in"): m.traffic.packets_in,
                n("packets_out"): m.traffic.packets_out},
            n("tcp_connections"): {n("established_connections"): {
                n("connections"): connections, n("total"): m.connection_total}},
        },
    }
    if m.custom:
        doc[n("custom_metrics")] = {metric.name: [metric.typed()] for metric in m.custom}
    return doc


def encode(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


_LISTS = (("tcp_ports", "listening TCP ports"), ("udp_ports", "listening UDP ports"),
          ("connections", "established connections"))


def _cut_lists(measured: Measured, limit: int, notes: List[str]) -> Measured:
    for attr, words in _LISTS:
        entries = getattr(measured, attr)
        if len(entries) > limit:
            notes.append(f"report lists {limit} of {len(entries)} {words}")
            measured = replace(measured, **{attr: tuple(entries[:limit])})
    return measured


def _fit_custom(measured: Measured, budget: int, notes: List[str]) -> Measured:
    """Custom metrics, smallest first, while they take at most BUDGET bytes."""
    sizes = {metric.name: len(encode({metric.name: [metric.typed()]})) + 1
             for metric in measured.custom}
    used, fitting = 0, set()
    for metric in sorted(measured.custom, key=lambda metric: sizes[metric.name]):
        if used + sizes[metric.name] <= budget:
            used += sizes[metric.name]
            fitting.add(metric.name)
        else:
            notes.append(f"custom metric {metric.name!r} left out: custom metrics may "
                         f"take at most {budget} bytes of a report")
    return replace(measured, custom=tuple(m for m in measured.custom if m.name in fitting))


def build_report(report_id: int, measured: Measured, short_names: bool = False,
                 max_bytes: int = MAX_REPORT_BYTES) -> Tuple[bytes, List[str]]:
    """(payload, notes): the report within AWS's limits, and what was trimmed."""
    notes: List[str] = []
    measured = _cut_lists(measured.totals(), MAX_LIST, notes)
    custom_budget = max_bytes // 2
    measured = _fit_custom(measured, custom_budget, notes)
    payload = encode(document(report_id, measured, short_names))
    while len(payload) > max_bytes:
        attr, words = max(_LISTS, key=lambda item: len(getattr(measured, item[0])))
        entries = getattr(measured, attr)
        if not entries:  # only with a tiny MAX_BYTES: the custom metrics' half is too much
            if not measured.custom:
                raise ValueError(f"a report without lists is over {max_bytes} bytes")
            custom_budget //= 2
            measured = _fit_custom(measured, custom_budget, notes)
            payload = encode(document(report_id, measured, short_names))
            continue
        measured = replace(measured, **{attr: tuple(entries[:len(entries) // 2])})
        payload = encode(document(report_id, measured, short_names))
        notes.append(f"report lists {len(entries) // 2} {words} to stay within "
                     f"{max_bytes} bytes")
    return payload, notes
