"""One report from what the machine shows now: the piece the Defender role's loop calls.

`Collector.build` reads the tables (netstat), the custom metrics directory (custom),
takes the next report id (report_id) and builds the payload (report); every note for the
log comes back with it. `delivered` is called when the link says the report was
published, and moves the traffic baseline (so a lost report's traffic is counted in the
next one). No I/O but reading /proc, the custom directory and the report id state file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

from . import custom, netstat
from .report import Measured, build_report
from .report_id import ReportIds


@dataclass(frozen=True)
class Built:
    report_id: int
    payload: bytes
    counters: Dict[str, netstat.Counters]
    notes: List[str]


class Collector:
    def __init__(self, ids: ReportIds, custom_dir: Optional[str] = None,
                 short_names: bool = False, proc_net: str = netstat.PROC_NET):
        self._ids = ids
        self._custom_dir = custom_dir
        self._short_names = short_names
        self._proc_net = proc_net
        self._traffic = netstat.TrafficBaseline()

    def build(self) -> Built:
        """The next report. OSError when its report id cannot be saved (no report)."""
        view = netstat.read_network(self._proc_net)
        notes = list(view.notes)
        metrics: list = []
        if self._custom_dir is not None:
            metrics, custom_notes = custom.read_custom_metrics(self._custom_dir)
            notes += custom_notes
        measured = Measured(tcp_ports=view.tcp_ports, udp_ports=view.udp_ports,
                            connections=view.connections,
                            traffic=self._traffic.measure(view.counters),
                            custom=metrics)
        report_id = self._ids.next_id()
        payload, report_notes = build_report(report_id, measured, self._short_names)
        return Built(report_id, payload, view.counters, notes + report_notes)

    def delivered(self, built: Built) -> None:
        self._traffic.commit(built.counters)
