"""The cloud's Device Defender metrics intake for one thing as a pure function
(IOT_CORE.md §8): ``handle(record, thing, fmt, payload, now, options)`` decodes and
validates a report against §8.2, checks report_id and the rate (§8.1), and returns the
new record (the last reports kept) and the reply to publish. No I/O here.

AWS documents no reply body beyond ``reportId`` and no rejection codes (§8.3 [?]); the
shapes and the codes below are the simulator's, one per cause.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from chariotd.sim import cbor

Response = Tuple[str, Any]

# Rejection codes (ours, §8.3 [?]).
INVALID_PAYLOAD = "InvalidPayload"          # not JSON / CBOR, or not an object
MISSING_FIELD = "MissingField"              # header, report_id, version, or no metrics
INVALID_REPORT = "InvalidReport"            # a name, type or value §8.2 does not allow
UNSUPPORTED_VERSION = "UnsupportedVersion"  # header version other than "1.0"
REPORT_ID_NOT_INCREASING = "ReportIdNotIncreasing"
THROTTLED = "Throttled"                     # sooner than one report per interval
CODES = (INVALID_PAYLOAD, MISSING_FIELD, INVALID_REPORT, UNSUPPORTED_VERSION,
         REPORT_ID_NOT_INCREASING, THROTTLED)

SHORT = {"header": "hed", "report_id": "rid", "version": "v", "metrics": "met",
         "custom_metrics": "cmet", "listening_tcp_ports": "tp", "listening_udp_ports": "up",
         "ports": "pts", "port": "pt", "interface": "if", "total": "t",
         "network_stats": "ns", "bytes_in": "bi", "bytes_out": "bo", "packets_in": "pi",
         "packets_out": "po", "tcp_connections": "tc", "established_connections": "ec",
         "connections": "cs", "remote_addr": "rad", "local_port": "lp",
         "local_interface": "li"}
CUSTOM_TYPES = ("number", "number_list", "string_list", "ip_list")
CUSTOM_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}\Z")
MAX_INTEGER = 2 ** 63 - 1


@dataclass(frozen=True)
class DefenderOptions:
    min_interval: int = 300     # §8.1: one report per thing every 300 s
    kept: int = 20              # reports (and rejections) kept per thing


class ReportError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def decode(payload: bytes, fmt: str) -> Any:
    try:
        if fmt == "cbor":
            return cbor.loads(payload)
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ReportError(INVALID_PAYLOAD, f"the report is not valid {fmt.upper()}: "
                                           f"{error}") from None


class _Checker:
    """Walks a report in one naming (long or short) and refuses what §8.2 does not allow."""

    def __init__(self, short: bool):
        self.short = short

    def name(self, long: str) -> str:
        return SHORT[long] if self.short else long

    def fail(self, message: str):
        raise ReportError(INVALID_REPORT, message)

    def object(self, value, where: str, allowed, required=()) -> dict:
        if not isinstance(value, dict):
            self.fail(f"{where} must be an object")
        names = {self.name(k) for k in allowed}
        for key in value:
            if key not in names:
                self.fail(f"{where} has an unknown field {str(key)[:64]!r}"
                          + (" (long and short names are not mixed)"
                             if key in SHORT or key in SHORT.values() else ""))
        for key in required:
            if self.name(key) not in value:
                raise ReportError(MISSING_FIELD, f"{where} lacks {self.name(key)}")
        return {k: value[self.name(k)] for k in allowed if self.name(k) in value}

    def integer(self, value, where: str, low: int = 0, high: int = MAX_INTEGER) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.fail(f"{where} must be an integer from {low} to {high}")
        return value

    def text(self, value, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(f"{where} must be a non-empty string")
        return value

    def items(self, value, where: str) -> list:
        if not isinstance(value, list):
            self.fail(f"{where} must be a list")
        return value

    def ports(self, value, where: str) -> None:
        block = self.object(value, where, ("ports", "total"))
        for i, item in enumerate(self.items(block.get("ports", []), f"{where}.ports")):
            port = self.object(item, f"{where}.ports[{i}]", ("port", "interface"))
            if "port" in port:
                self.integer(port["port"], f"{where}.ports[{i}].port", 1, 65535)
            if "interface" in port:
                self.text(port["interface"], f"{where}.ports[{i}].interface")
        if "total" in block:
            self.integer(block["total"], f"{where}.total")

    def metrics(self, value) -> None:
        where = self.name("metrics")
        metrics = self.object(value, where, ("listening_tcp_ports", "listening_udp_ports",
                                             "network_stats", "tcp_connections"))
        for key in ("listening_tcp_ports", "listening_udp_ports"):
            if key in metrics:
                self.ports(metrics[key], self.name(key))
        if "network_stats" in metrics:
            stats = self.object(metrics["network_stats"], self.name("network_stats"),
                                ("bytes_in", "bytes_out", "packets_in", "packets_out"))
            for key, count in stats.items():
                self.integer(count, self.name(key))
        if "tcp_connections" in metrics:
            tcp = self.object(metrics["tcp_connections"], self.name("tcp_connections"),
                              ("established_connections",))
            if "established_connections" in tcp:
                self.connections(tcp["established_connections"])

    def connections(self, value) -> None:
        where = self.name("established_connections")
        block = self.object(value, where, ("connections", "total"))
        for i, item in enumerate(self.items(block.get("connections", []),
                                            f"{where}.connections")):
            at = f"{where}.connections[{i}]"
            connection = self.object(item, at, ("remote_addr", "local_port",
                                                "local_interface"), ("remote_addr",))
            if remote_address_error(connection["remote_addr"]):
                self.fail(f"{at}.{self.name('remote_addr')}: "
                          + remote_address_error(connection["remote_addr"]))
            if "local_port" in connection:
                self.integer(connection["local_port"], f"{at}.local_port", 0, 65535)
            if "local_interface" in connection:
                self.text(connection["local_interface"], f"{at}.local_interface")
        if "total" in block:
            self.integer(block["total"], f"{where}.total")

    def custom(self, value) -> dict:
        """Each custom metric's type, checked (§8.2: a one-element list of a typed value)."""
        where = self.name("custom_metrics")
        if not isinstance(value, dict):
            self.fail(f"{where} must be an object")
        types = {}
        for name, entry in value.items():
            at = f"{where}.{str(name)[:64]}"
            if not isinstance(name, str) or not CUSTOM_NAME.match(name) \
                    or name.startswith("aws:"):
                self.fail(f"{at}: a custom metric name is 1-128 of [a-zA-Z0-9:_-], not aws:")
            if not isinstance(entry, list) or len(entry) != 1 or not isinstance(
                    entry[0], dict) or len(entry[0]) != 1:
                self.fail(f"{at} must be a list of one object with one typed value")
            (kind, typed), = entry[0].items()
            if kind not in CUSTOM_TYPES:
                self.fail(f"{at}: the type must be one of {', '.join(CUSTOM_TYPES)}")
            self.typed(kind, typed, at)
            types[name] = kind
        return types

    def typed(self, kind: str, value, at: str) -> None:
        def number(x) -> bool:
            return isinstance(x, (int, float)) and not isinstance(x, bool) \
                and x == x and abs(x) != float("inf")
        if kind == "number":
            ok = number(value)
        elif kind == "number_list":
            ok = isinstance(value, list) and all(number(x) for x in value)
        elif kind == "string_list":
            ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
        else:
            ok = isinstance(value, list) and all(isinstance(x, str) and _is_ip(x)
                                                 for x in value)
        if not ok:
            self.fail(f"{at}: not a valid {kind}")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def remote_address_error(value) -> Optional[str]:
    """Why VALUE is not an 'ip:port' (IPv4 a.b.c.d:p, IPv6 [addr]:p or addr:p), or None."""
    if not isinstance(value, str):
        return "must be a string ip:port"
    host, _, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not _is_ip(host):
        return "must be ip:port with an IPv4 or IPv6 address"
    if not (port.isascii() and port.isdigit() and int(port) <= 65535):
        return "must end in :port (0-65535)"
    return None


def check(report) -> Tuple[int, dict]:
    """(report_id, {custom metric name: type}) of a valid report, else ReportError."""
    if not isinstance(report, dict):
        raise ReportError(INVALID_PAYLOAD, "a report must be an object")
    if "header" in report or "hed" not in report:
        checker = _Checker(short=False)
    else:
        checker = _Checker(short=True)
    root = checker.object(report, "the report", ("header", "metrics", "custom_metrics"),
                          ("header",))
    header = checker.object(root["header"], checker.name("header"), ("report_id", "version"),
                            ("report_id", "version"))
    report_id = checker.integer(header["report_id"], checker.name("report_id"), 1)
    version = header["version"]
    if version != "1.0":
        raise ReportError(UNSUPPORTED_VERSION, f"version {str(version)[:16]!r} is not 1.0")
    if "metrics" not in root and "custom_metrics" not in root:
        raise ReportError(MISSING_FIELD, f"a report needs {checker.name('metrics')} or "
                                         f"{checker.name('custom_metrics')}")
    if "metrics" in root:
        checker.metrics(root["metrics"])
    types = checker.custom(root["custom_metrics"]) if "custom_metrics" in root else {}
    return report_id, types


def _reply(thing: str, fmt: str, report_id, error: Optional[ReportError],
           now: int) -> Response:
    doc: dict = {"thingName": thing}
    if isinstance(report_id, int) and not isinstance(report_id, bool):
        doc["reportId"] = report_id
    if error is None:
        doc.update(status="ACCEPTED", timestamp=now)
        suffix = "accepted"
    else:
        doc.update(status="REJECTED", statusDetails={"ErrorCode": error.code,
                                                     "ErrorMessage": error.message},
                   timestamp=now)
        suffix = "rejected"
    return f"$aws/things/{thing}/defender/metrics/{fmt}/{suffix}", doc


def _raw_report_id(report) -> Any:
    for root, key in (("header", "report_id"), ("hed", "rid")):
        if isinstance(report, dict) and isinstance(report.get(root), dict):
            return report[root].get(key)
    return None


def handle(record: dict, thing: str, fmt: str, payload: bytes, now: int,
           options: DefenderOptions = DefenderOptions()) -> Tuple[dict, List[Response]]:
    """Take one report. RECORD is {"reports": [...], "rejected": [...], "lastReportId",
    "lastAcceptedAt", "customTypes"}; returns the new record and the reply."""
    report, report_id = None, None
    try:
        report = decode(payload, fmt)
        report_id = _raw_report_id(report)
        report_id, types = check(report)
        last = record.get("lastReportId")
        if last is not None and report_id <= last:
            raise ReportError(REPORT_ID_NOT_INCREASING,
                              f"report_id {report_id} is not above the last one, {last}")
        accepted_at = record.get("lastAcceptedAt")
        if accepted_at is not None and now - accepted_at < options.min_interval:
            raise ReportError(THROTTLED, f"one report per {options.min_interval} s; the "
                                         f"last was {now - accepted_at} s ago")
        known = record.get("customTypes", {})
        for name, kind in types.items():
            if known.get(name, kind) != kind:
                raise ReportError(INVALID_REPORT, f"custom metric {name} is a "
                                                  f"{known[name]}, not a {kind}")
    except ReportError as error:
        rejected = {"receivedAt": now, "format": fmt, "code": error.code,
                    "message": error.message}
        if isinstance(report_id, int) and not isinstance(report_id, bool):
            rejected["reportId"] = report_id
        new = dict(record, rejected=(record.get("rejected", []) + [rejected])[-options.kept:])
        return new, [_reply(thing, fmt, report_id, error, now)]
    kept = {"reportId": report_id, "receivedAt": now, "format": fmt, "report": report}
    new = dict(record, lastReportId=report_id, lastAcceptedAt=now,
               customTypes=dict(record.get("customTypes", {}), **types),
               reports=(record.get("reports", []) + [kept])[-options.kept:])
    return new, [_reply(thing, fmt, report_id, None, now)]
