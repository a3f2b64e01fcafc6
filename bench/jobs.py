"""What AWS IoT Jobs cost: the time from `job create` to the handler starting and to
the final update accepted, and the tree's PSS with and without --jobs.

    .venv/bin/python bench/jobs.py [--jobs N] [--reps R]

Against chariotd-sim on loopback, one tree with `--jobs=dev1:DIR` runs N jobs one after
the other (each created once the previous one ended); the handler writes the wall
clock (`date +%s.%N`) as it starts and exits 0. "start" is that time minus the moment
`create_job` was called; "final" is when the sim first describes the execution as
SUCCEEDED (polled every 5 ms, so up to 5 ms late). The notify-next of a new job wakes
the idle device: this is the path a job takes on AWS.

PSS: the same tree (one --messages directory) started R times without and R times with
--jobs (alternating), measured 2 s after it connected, with --jobs after one job ran
(bench/drain.py: tree_pss_kb). It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drain import print_pss_cost, tree_pss_kb  # noqa: E402

from chariotd.sim import Simulator  # noqa: E402

CHARIOTD = str(Path(sys.executable).parent / "chariotd")
THING = "dev1"


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.005):
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(interval)


def start_tree(sim: Simulator, work: Path, name: str, jobs: bool) -> subprocess.Popen:
    args = [CHARIOTD, f"--clientid={THING}", f"--cacert={sim.cafile}",
            f"--certstore={sim.device(THING)}", f"--messages={work / 'mqtt'}"]
    if jobs:
        args.append(f"--jobs={THING}:{work / 'handlers'}")
    log = work / f"{name}.log"
    proc = subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env={"PATH": "/usr/bin:/bin"})
    wait_for(lambda: "connected to" in log.read_text(errors="replace"))
    return proc


def stop_tree(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(10)


def run_job(sim: Simulator, started: Path, job_id: str):
    started.unlink(missing_ok=True)
    created = time.time()
    sim.create_job(THING, {"operation": "mark"}, job_id=job_id)
    wait_for(lambda: sim.describe_job(THING, job_id)["status"] == "SUCCEEDED")
    final = time.time()
    start = float(started.read_text())
    return start - created, final - created


def percentile(values, fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--reps", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chariotd-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        handlers = work / "handlers"
        handlers.mkdir(mode=0o755)
        started = work / "started"
        mark = handlers / "mark"
        mark.write_text(f"#!/bin/sh\ndate +%s.%N > {started}.tmp && mv {started}.tmp "
                        f"{started}\n")
        mark.chmod(0o755)
        with Simulator(work / "sim", port=0) as sim:
            proc = start_tree(sim, work, "latency", jobs=True)
            try:
                run_job(sim, started, "warm-up")
                times = [run_job(sim, started, f"b{n}") for n in range(options.jobs)]
            finally:
                stop_tree(proc)
            for index, label in ((0, "create -> handler started"),
                                 (1, "create -> final update accepted")):
                values = [t[index] * 1000 for t in times]
                print(f"{label}: p50 {percentile(values, 0.5):.1f} ms, "
                      f"p99 {percentile(values, 0.99):.1f} ms, max {max(values):.1f} ms "
                      f"({len(values)} jobs)")
            totals = {False: [], True: []}
            for run in range(options.reps):
                for jobs in (False, True):
                    proc = start_tree(sim, work, f"pss-{run}-{jobs}", jobs)
                    try:
                        if jobs:
                            run_job(sim, started, f"pss{run}")
                        time.sleep(2.0)
                        result = tree_pss_kb(proc.pid)
                    finally:
                        stop_tree(proc)
                    totals[jobs].append(result["total_kb"])
                    if jobs and run == 0:
                        processes = result["processes"]
    print_pss_cost("--jobs", totals, processes)


if __name__ == "__main__":
    main()
