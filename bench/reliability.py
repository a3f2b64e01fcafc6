"""Fault campaigns with large counts (issue 8), and the table of docs/reliability.md.

    .venv/bin/python bench/reliability.py            # the counts in the doc (~10 min)
    .venv/bin/python bench/reliability.py --quick    # the test suite's counts
    .venv/bin/python bench/reliability.py --no-write # print the table, leave the doc alone

Runs the campaigns of tests/fault_campaigns.py (each checks its invariants and raises
on a violation; a campaign that raises is a row that says so) and the file-system
fault tests of tests/integration/test_faults_fs.py through pytest, then replaces the
table between the markers in docs/reliability.md. It needs root for the mounts, like
the suite.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import fault_campaigns as campaigns  # noqa: E402
from conftest import TestPKI  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- reliability table: bench/reliability.py -->", "<!-- end of table -->"

FULL = dict(drain_messages=5000, broker_kills=10, proxy_stalls=5, sigstop_stalls=3,
            storm_restarts=20, storm_default_runs=2, kill_rounds=100, shadow_rounds=60,
            fleet_rounds=60)
QUICK = dict(drain_messages=5000, broker_kills=3, proxy_stalls=1, sigstop_stalls=1,
             storm_restarts=20, storm_default_runs=0, kill_rounds=20, shadow_rounds=20,
             fleet_rounds=20)

# What each file-system test injects (see its docstring in test_faults_fs.py).
FS_TESTS = {
    "test_disk_full_while_writing_an_outfile":
        ("disk full (64 KB tmpfs) under an outfile", 1, "write refused and logged, old "
         "outfile whole, no temp file; next change written once space is back"),
    "test_disk_full_in_an_action_directory":
        ("disk full (64 KB tmpfs) under an action directory", 1, "bad file to failed/, "
         "good one published, works on when space is back"),
    "test_action_directory_turned_read_only_under_the_daemon":
        ("new/ turned read-only under the daemon", 1, "logged, no crash, each message "
         "once, works again when writable"),
    "test_read_only_action_directory_at_start_is_one_line_and_exit_2":
        ("new/ read-only at start", 1, "one line, exit 2 (runit waits 10 s)"),
    "test_wall_clock_jumps_do_not_stall_the_daemon":
        ("wall clock -10 y then +20 y (libfaketime)", 2, "no stall, no drop, keep-alive "
         "pings go on"),
}


def run_campaign(rows, label, function, *args, **kwargs) -> None:
    print(f"== {label}", flush=True)
    try:
        tally = function(*args, **kwargs)
        tally.name = label
        row = tally.as_dict()
        row["held"] = "yes"
    except Exception as error:  # noqa: BLE001 - a broken invariant is a result
        traceback.print_exc()
        row = {"name": label, "held": f"**NO**: {str(error).splitlines()[0][:200]}"}
    print({k: v for k, v in row.items() if k not in ("detections", "reconnects",
                                                    "fd_samples")}, flush=True)
    rows.append(row)


def run_fs_tests(rows, workdir: Path) -> None:
    print("== file-system faults (pytest)", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
         f"--basetemp={workdir}", str(ROOT / "tests/integration/test_faults_fs.py")],
        cwd=ROOT, capture_output=True, text=True)
    print(result.stdout[-2000:], flush=True)
    for test, (label, faults, what) in FS_TESTS.items():
        match = re.search(rf"^(PASSED|FAILED|SKIPPED|ERROR)\b.*{test}", result.stdout, re.M)
        outcome = match.group(1) if match else "NOT RUN"
        held = "yes" if outcome == "PASSED" else f"**{outcome}**"
        rows.append({"name": label, "faults": faults, "held": held, "notes": [what]})


def cell(value) -> str:
    return "" if value in (None, 0, 0.0, "", []) else str(value)


def table(rows) -> str:
    lines = ["| campaign | faults injected | messages sent | received (duplicates) | lost "
             "| outfiles checked | certificates checked | request files handled | held "
             "| seconds | notes |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    totals = {k: 0 for k in ("faults", "messages_sent", "messages_received", "duplicates",
                             "lost", "outfiles_checked", "certificates_checked",
                             "requests_handled")}
    for row in rows:
        for key in totals:
            totals[key] += row.get(key, 0) or 0
        received = row.get("messages_received", 0)
        received_cell = f"{received} ({row.get('duplicates', 0)})" if received else ""
        lost = row.get("lost", 0) if row.get("messages_sent") or row.get(
            "requests_handled") else ""
        lines.append(
            f"| {row['name']} | {cell(row.get('faults'))} | {cell(row.get('messages_sent'))} "
            f"| {received_cell} | {lost} | {cell(row.get('outfiles_checked'))} "
            f"| {cell(row.get('certificates_checked'))} | {cell(row.get('requests_handled'))} "
            f"| {row['held']} | {row.get('seconds', 0):.0f} | {'; '.join(row.get('notes', []))} |")
    lines.append(
        f"| **total** | **{totals['faults']}** | **{totals['messages_sent']}** "
        f"| **{totals['messages_received']} ({totals['duplicates']})** | **{totals['lost']}** "
        f"| **{totals['outfiles_checked']}** | **{totals['certificates_checked']}** "
        f"| **{totals['requests_handled']}** | | | |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the test suite's counts")
    parser.add_argument("--no-write", action="store_true", help="do not update the doc")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    options = parser.parse_args()
    counts = QUICK if options.quick else FULL
    os.chdir(ROOT)
    rows = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chariotd-reliability-") as tmp:
        work = Path(tmp)
        pki, rogue = TestPKI(work / "pki"), TestPKI(work / "rogue-pki")
        seed = options.seed
        run_campaign(rows, f"broker SIGKILLed and restarted during a "
                     f"{counts['drain_messages']}-message drain", campaigns.broker_kill_drain,
                     pki, work / "broker-kill", messages=counts["drain_messages"],
                     kills=counts["broker_kills"], seed=seed)
        run_campaign(rows, "silent link: proxy stops forwarding (keep-alive 2 s)",
                     campaigns.silent_link, pki, work / "silent-proxy",
                     stalls=counts["proxy_stalls"], keepalive=2, how="proxy")
        run_campaign(rows, "silent link: broker SIGSTOPped (keep-alive 2 s)",
                     campaigns.silent_link, pki, work / "silent-sigstop",
                     stalls=counts["sigstop_stalls"], keepalive=2, how="sigstop")
        run_campaign(rows, f"{counts['storm_restarts']} restarts, broker refuses the "
                     "certificate (backoff base 0.02 s)", campaigns.rejected_certificate_storm,
                     pki, rogue, work / "storm", restarts=counts["storm_restarts"],
                     backoff_base=0.02)
        if counts["storm_default_runs"]:
            run_campaign(rows, f"{counts['storm_default_runs']} runs, broker refuses the "
                         "certificate (default backoff)", campaigns.rejected_certificate_storm,
                         pki, rogue, work / "storm-default",
                         restarts=counts["storm_default_runs"], backoff_base=1.0)
        run_campaign(rows, f"tree SIGKILLed at random moments, {counts['kill_rounds']} "
                     "rounds: drains", campaigns.kill_drain, pki, work / "kill-drain",
                     rounds=counts["kill_rounds"], seed=seed)
        from chariotd.sim import Simulator
        with Simulator(work / "sim", port=0) as sim:
            run_campaign(rows, f"tree SIGKILLed at random moments, {counts['shadow_rounds']} "
                         "rounds: shadow updates", campaigns.kill_shadow, sim,
                         work / "kill-shadow", rounds=counts["shadow_rounds"], seed=seed)
        with Simulator(work / "sim-fp", port=0) as sim:
            run_campaign(rows, f"tree SIGKILLed at random moments, {counts['fleet_rounds']} "
                         "rounds: fleet provisioning", campaigns.kill_fleetprov, sim,
                         work / "kill-fleetprov", rounds=counts["fleet_rounds"], seed=seed)
        run_fs_tests(rows, work / "fs")
    text = table(rows)
    stamp = (f"Generated by `bench/reliability.py{' --quick' if options.quick else ''}` "
             f"(seed {options.seed}) on {time.strftime('%Y-%m-%d')} in "
             f"{(time.monotonic() - began) / 60:.1f} min.")
    print(text)
    if not options.no_write:
        doc = DOC.read_text()
        start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        DOC.write_text(doc[:start] + "\n" + stamp + "\n\n" + text + "\n" + doc[end:])
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0 if all(row["held"] == "yes" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
