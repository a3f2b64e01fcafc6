"""What --defender costs in memory: the whole tree's PSS with and without it.

    .venv/bin/python bench/defender_pss.py [--reps R]

Against chariotd-sim on loopback, the same tree (one --messages directory) is started
R times without and R times with `--defender=dev1` (alternating); each run is measured
2 s after it connected, and with --defender after its first report was accepted (the
seam CHARIOTD_DEFENDER_TIMING=first=0.5 sends it half a second after connecting), so
the defender process has built and sent a report. PSS is summed over the tree from
/proc/PID/smaps_rollup (bench/drain.py: tree_pss_kb). It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drain import print_pss_cost, tree_pss_kb  # noqa: E402

from chariotd.sim import Simulator  # noqa: E402
from chariotd.sim.defender import DefenderOptions  # noqa: E402

CHARIOTD = str(Path(sys.executable).parent / "chariotd")


def wait_for(log: Path, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise SystemExit(f"no {text!r} within {timeout} s:\n{log.read_text()}")
        time.sleep(0.05)


def measure(sim: Simulator, work: Path, defender: bool, run: int) -> dict:
    log = work / f"run-{run}-{'defender' if defender else 'plain'}.log"
    args = [CHARIOTD, "--clientid=dev1", f"--cacert={sim.cafile}",
            f"--certstore={sim.device('dev1')}", f"--messages={work / 'mqtt'}"]
    if defender:
        args.append("--defender=dev1")
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={"PATH": "/usr/bin:/bin",
                                     "CHARIOTD_DEFENDER_TIMING": "first=0.5"})
    try:
        wait_for(log, "connected to")
        if defender:
            wait_for(log, "accepted by Device Defender")
        time.sleep(2.0)
        return tree_pss_kb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chariotd-bench-") as tmp:
        work = Path(tmp)
        totals = {False: [], True: []}
        with Simulator(work / "sim", port=0,
                       defender_options=DefenderOptions(min_interval=0)) as sim:
            for run in range(options.reps):
                for defender in (False, True):
                    result = measure(sim, work, defender, run)
                    totals[defender].append(result["total_kb"])
                    if defender and run == 0:
                        processes = result["processes"]
    print_pss_cost("--defender", totals, processes)


if __name__ == "__main__":
    main()
