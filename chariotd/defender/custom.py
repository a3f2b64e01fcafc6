"""Custom metrics from a directory (`--defender-custom=DIR`), IOT_CORE.md 8.2.

One file per metric: the file's name is the metric's name (as created with
CreateCustomMetric: 1-128 of `A-Z a-z 0-9 : _ -`, not starting with `aws:`), its JSON
content the value:

- a number                        -> `number`
- a list of numbers               -> `number_list`
- a list of strings               -> `string_list`, or `ip_list` when every string is an
                                     IP address
- `{"number": N}`, `{"number_list": [...]}`, `{"string_list": [...]}`,
  `{"ip_list": [...]}`            -> that type, chosen by the writer (the only way to
                                     send an empty list, or IPs as a string list)

Files may belong to unprivileged users: each is read through safe_open (no symlink, no
FIFO, one link, at most MAX_FILE_BYTES) and the one JSON loader. A bad file is a note
for the log and is left out of that report; it never stops the report. Names starting
with `.` are skipped silently (editors' and atomic writers' temp files).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass
from typing import List, Tuple

from chariotd.kernel import safe_open
from chariotd.formats.errors import FormatError
from chariotd.formats.json import load

NAME_PATTERN = re.compile(r"[A-Za-z0-9:_-]{1,128}\Z")  # CreateCustomMetric's metricName
RESERVED_PREFIX = "aws:"
KINDS = ("number", "number_list", "string_list", "ip_list")

MAX_FILE_BYTES = 64 * 1024
MAX_METRICS = 100       # metrics in one report; further files are left out with a note
MAX_ENTRIES = 1000      # directory entries looked at in one report
MAX_LIST = 1000         # items in one list (ours: AWS documents none)
MAX_STRING = 256        # characters of one string in a string list
MAX_EXACT_INTEGER = 2 ** 53  # beyond it a double (AWS's number) no longer holds an integer


class BadMetric(ValueError):
    """A metric file that cannot be sent; str() says why, for a log line."""


@dataclass(frozen=True)
class CustomMetric:
    name: str
    kind: str      # one of KINDS
    value: object  # a number, or a tuple of numbers or strings

    def typed(self) -> dict:
        """The typed value as AWS wants it inside the metric's one-element array."""
        return {self.kind: list(self.value) if isinstance(self.value, tuple) else self.value}


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise BadMetric("the name must be 1-128 of A-Z a-z 0-9 : _ -")
    if name.lower().startswith(RESERVED_PREFIX):
        raise BadMetric(f"names starting with {RESERVED_PREFIX!r} are AWS's own")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value, where: str):
    if not _is_number(value):
        raise BadMetric(f"{where} is {_kind_of(value)}, not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadMetric(f"{where} is not a finite number")
    if isinstance(value, int) and abs(value) > MAX_EXACT_INTEGER:
        raise BadMetric(f"{where} is beyond +-2**53, which AWS's numbers do not hold exactly")
    return value


def _string(value, where: str) -> str:
    if not isinstance(value, str):
        raise BadMetric(f"{where} is {_kind_of(value)}, not a string")
    if len(value) > MAX_STRING:
        raise BadMetric(f"{where} is over {MAX_STRING} characters")
    if not value.isprintable():
        raise BadMetric(f"{where} holds control characters")
    return value


def is_ip_address(text: str) -> bool:
    """An IPv4 or IPv6 address as AWS's ip_list takes it (no zone `%eth0`, no port)."""
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _ip(value, where: str) -> str:
    text = _string(value, where)
    if not is_ip_address(text):
        raise BadMetric(f"{where} is not an IP address")
    return text


def _list(value, item, where: str) -> tuple:
    if not isinstance(value, list):
        raise BadMetric(f"{where} is {_kind_of(value)}, not a list")
    if len(value) > MAX_LIST:
        raise BadMetric(f"{where} has {len(value)} items; at most {MAX_LIST} are sent")
    return tuple(item(v, f"{where}[{i}]") for i, v in enumerate(value))


_TYPED = {
    "number": lambda v, where: _number(v, where),
    "number_list": lambda v, where: _list(v, _number, where),
    "string_list": lambda v, where: _list(v, _string, where),
    "ip_list": lambda v, where: _list(v, _ip, where),
}


def _kind_of(value) -> str:
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "a string", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def metric_value(value) -> Tuple[str, object]:
    """(kind, value) for a metric file's JSON VALUE; BadMetric says why not."""
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in _TYPED:
            raise BadMetric("an object must have exactly one of the members "
                            + ", ".join(KINDS))
        kind, inner = next(iter(value.items()))
        return kind, _TYPED[kind](inner, kind)
    if _is_number(value):
        return "number", _number(value, "the value")
    if isinstance(value, list):
        if not value:
            raise BadMetric('an empty list has no type; write {"number_list": []}, '
                            '{"string_list": []} or {"ip_list": []}')
        if all(_is_number(v) for v in value):
            return "number_list", _list(value, _number, "the value")
        if all(isinstance(v, str) for v in value):
            strings = _list(value, _string, "the value")
            kind = "ip_list" if all(is_ip_address(s) for s in strings) else "string_list"
            return kind, strings
        raise BadMetric("a list must hold only numbers or only strings")
    raise BadMetric(f"the value is {_kind_of(value)}; a number, a list, or a typed object "
                    "is sent")


def parse_metric(name: str, data: bytes) -> CustomMetric:
    """The metric named NAME whose file holds DATA; BadMetric says why not."""
    check_name(name)
    try:
        value = load(data)
    except FormatError as error:
        raise BadMetric(f"not JSON: {error}") from None
    kind, value = metric_value(value)
    return CustomMetric(name, kind, value)


def read_custom_metrics(directory: str) -> Tuple[List[CustomMetric], List[str]]:
    """The metrics of DIRECTORY sorted by name, and one note per file left out."""
    notes: List[str] = []
    try:
        with os.scandir(directory) as entries:
            names = []
            for count, entry in enumerate(entries):
                if count >= MAX_ENTRIES:
                    notes.append(f"custom metrics {directory}: over {MAX_ENTRIES} entries; "
                                 "the rest were not looked at")
                    break
                if not entry.name.startswith("."):
                    names.append(entry.name)
    except OSError as error:
        return [], [f"custom metrics {directory}: cannot list: {error.strerror or error}"]
    metrics: List[CustomMetric] = []
    for name in sorted(names):
        if len(metrics) >= MAX_METRICS:
            notes.append(f"custom metrics {directory}: over {MAX_METRICS} metrics; "
                         f"{name} and the names after it were left out")
            break
        try:
            check_name(name)
            data, _ = safe_open.read_file(os.path.join(directory, name), MAX_FILE_BYTES,
                                          single_link=True)
            metrics.append(parse_metric(name, data))
        except BadMetric as error:
            notes.append(f"custom metric {name!r} left out: {error}")
        except FileNotFoundError:
            pass  # removed since the listing: nothing to send
        except OSError as error:
            notes.append(f"custom metric {name!r} left out: {error.strerror or error}")
    return metrics, notes
