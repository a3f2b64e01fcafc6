"""Backlog benchmark of the messages watcher: a huge backlog at start, and what
priorities and letterheads cost.

    .venv/bin/python bench/backlog.py [--quick] [--files N] [--count N] [--reps R]

(1) Scale: N files (default 100,000) waiting in new/ when chariotd is spawned. Until
    new/ is empty, the Pss of every process of the tree (/proc/PID/smaps_rollup) is
    sampled every 0.2 s, and the peak of each is reported next to an idle watcher of
    the same tree (a second, empty --messages directory) and next to what the file
    names alone take in a Python list. Meanwhile a probe file is renamed into that
    second directory every 0.2 s, each waited for at the subscriber before the next:
    its latency (rename -> arrival) tells whether the link keeps serving while the
    big directory is scanned and drained.
(2) Drain rates: --count files (default 5,000; the generator run uses a fifth) waiting
    at start, drained by a fresh tree; rate = files / (the "connected" line -> new/
    empty), and also from the spawn. Four variants, interleaved over --reps
    repetitions, medians reported:
        plain        topic + payload
        priorities   every file has a `priority` (0-9), every fourth a `priority_slot`
                     (of 50): the worst case, each file is parsed when it arrives
        lh-file      plain files, --default-letterhead-file (a 60-byte JSON object)
        lh-generator plain files, --default-letterhead-generator (a /bin/sh script
                     printing a letterhead): one process per message

(3) The watcher's own work per file, in this process (no broker, no IPC), the best of
    7 passes over --count files, which is steadier than (2) on a shared machine:
    learn (read it on arrival, peek at its priority fields, queue it), pop, and send
    (read it again, parse, build the payload), plain and with priorities; the same
    send with a letterhead file (read, compared with its last bytes, merged).

It reuses the process, subscriber and PSS helpers of bench/drain.py. It measures; it
never asserts. Results: a table on stdout and bench/results/backlog.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

from drain import Proc, Subscriber, action_dir, compile_chariotd, pct, tree_pids
from drain import pss_by_process as drain_pss

from chariotd.sim import pki
from chariotd.sim.mosquitto import OPEN_ACL, SERVICE_USER, Mosquitto

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PAD = "0123456789abcdef" * 4
CHARIOTD = str(Path(sys.executable).parent / "chariotd")
VARIANTS = ("plain", "priorities", "lh-file", "lh-generator")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def note(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def pss_by_title(root: int) -> Dict[str, int]:
    """{process title: Pss kB} over the tree of ROOT."""
    return {title: kb for title, kb in drain_pss(root).values()}


def cpu_by_role(root: int) -> Dict[str, float]:
    """{process title: CPU seconds} over the tree of ROOT, each process's own time plus
    that of the children it waited for (the letterhead generators of a watcher)."""
    found = {}
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        found[title] = ticks / CLK_TCK
    return found


def role(title: str) -> str:
    if title.startswith("chariotd: watch messages"):
        return "watcher"
    if title.startswith("chariotd: "):
        return title[len("chariotd: "):]
    if title == "chariotd":
        return "parent"
    return "(a child sampled before it took its title)"


def empty(directory: Path) -> bool:
    with os.scandir(directory) as entries:
        return next(entries, None) is None


def wait_empty(directory: Path, timeout: float, proc: Proc) -> Optional[float]:
    """When DIRECTORY became empty; None if it did not within TIMEOUT or PROC died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.alive():
        if empty(directory):
            return time.monotonic()
        time.sleep(0.01)
    return None


def write_files(directory: Path, tag: str, count: int, variant: str = "plain") -> None:
    rng = random.Random(1)
    new = directory / "new"
    for seq in range(1, count + 1):
        document = {"topic": f"bench/{tag}", "qos": 1,
                    "payload": {"seq": seq, "device": "bench", "temperature": 21.5,
                                "data": PAD}}
        if variant == "priorities":
            document["priority"] = rng.randrange(10)
            if seq % 4 == 0:
                document["priority_slot"] = f"slot{rng.randrange(50)}"
        with open(new / f"{tag}-{seq:06d}.json", "w") as f:
            json.dump(document, f)


class Run:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="chariotd-backlog-"))
        self.tags = 0
        self.results: Dict[str, object] = {"rates": {v: [] for v in VARIANTS}}

    def setup(self) -> None:
        pki_dir = self.work / "pki"
        ca = pki.CA.load_or_create(pki_dir)
        self.cafile = ca.cert_path
        server_crt, server_key = ca.issue_server(pki_dir)
        for cn in (SERVICE_USER, "bench-device"):
            cert, key = ca.issue_client(cn)
            (pki_dir / f"{cn}.crt").write_bytes(cert)
            (pki_dir / f"{cn}.key").write_bytes(key)
            (pki_dir / f"{cn}.key").chmod(0o600)
        self.broker = Mosquitto(self.work / "broker", self.cafile, server_crt, server_key,
                                acl=OPEN_ACL).start()
        self.certstore = self.work / "certstore"
        pki.write_certstore(self.certstore, self.broker.endpoint,
                            (pki_dir / "bench-device.crt").read_bytes(),
                            (pki_dir / "bench-device.key").read_bytes())
        self.sub = Subscriber(self.broker, self.cafile, pki_dir / f"{SERVICE_USER}.crt",
                              pki_dir / f"{SERVICE_USER}.key").start()
        self.letterhead = self.work / "letterhead.json"
        self.letterhead.write_text(json.dumps({"payload": {"site": "bench", "fw": "1.2.3"},
                                               "qos": 1}))
        self.generator = self.work / "letterhead-gen"
        self.generator.write_text("#!/bin/sh\nprintf '{\"payload\": {\"site\": \"bench\", "
                                  "\"slot\": \"%s\"}}' \"$MESSAGE_PRIORITY_SLOT\"\n")
        self.generator.chmod(0o755)

    def tag(self, what: str) -> str:
        self.tags += 1
        return f"{what}{self.tags}"

    def spawn(self, dirs: List[Path], extra: List[str] = ()) -> Proc:
        argv = [CHARIOTD, "--clientid=bench-backlog", f"--cacert={self.cafile}",
                f"--certstore={self.certstore}", *(f"--messages={d}" for d in dirs),
                "--default-message-concurrency=10", *extra]
        return Proc("chariotd", argv, self.work / "chariotd.log").start()

    # (2) ----------------------------------------------------------------------------------
    def rate(self, variant: str) -> None:
        count = self.args.count // 5 if variant == "lh-generator" else self.args.count
        tag = self.tag(variant[:2])
        directory = action_dir(self.work, tag)
        write_files(directory, tag, count, variant)
        extra = {"lh-file": [f"--default-letterhead-file={self.letterhead}"],
                 "lh-generator": [f"--default-letterhead-generator={self.generator}"]}
        proc = self.spawn([directory], extra.get(variant, []))
        try:
            done = wait_empty(directory / "new", self.args.timeout, proc)
            connected = proc.wait_connected(timeout=1)
            got = self.sub.wait_count(tag, count, timeout=30)
            result = {"files": count, "received": self.sub.received(tag)}
            if done is None or connected is None or not got:
                result["error"] = proc.tail()
            else:
                result["from_spawn"] = count / (done - proc.spawned_at)
                result["from_connected"] = count / (done - connected)
                for title, seconds in cpu_by_role(proc.pid).items():
                    if role(title) in ("watcher", "link"):
                        result[f"{role(title)}_cpu_us_per_file"] = seconds * 1e6 / count
        finally:
            proc.stop()
        self.results["rates"][variant].append(result)
        note(f"{variant}: {result.get('from_connected', 0):.0f} files/s "
             f"({count} files){' ERROR' if 'error' in result else ''}")

    # (1) ----------------------------------------------------------------------------------
    def scale(self) -> None:
        n = self.args.files
        tag = self.tag("big")
        big, probe = action_dir(self.work, tag), action_dir(self.work, "probe")
        note(f"writing {n} files")
        write_files(big, tag, n)
        names = [f"{tag}-{seq:06d}.json" for seq in range(1, n + 1)]
        names_kb = (sys.getsizeof(names) + sum(map(sys.getsizeof, names))) / 1024
        del names
        peaks: Dict[str, int] = {}
        stop = threading.Event()
        spawned_epoch = time.time()
        proc = self.spawn([big, probe])

        def sample():
            while not stop.is_set():
                for title, kb in pss_by_title(proc.pid).items():
                    peaks[title] = max(peaks.get(title, 0), kb)
                stop.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        latencies = {"before_first_publish": [], "during_drain": []}
        try:
            proc.wait_connected(timeout=30)
            seq = 0
            while not empty(big / "new") and proc.alive():
                seq += 1
                phase = ("during_drain" if self.sub.received(tag) else "before_first_publish")
                (probe / "tmp" / f"p{seq}").write_text(json.dumps(
                    {"topic": "bench/lat", "payload": {"seq": seq}}))
                sent = time.time()
                os.rename(probe / "tmp" / f"p{seq}", probe / "new" / f"p{seq}")
                arrived = self.sub.wait_seq("lat", seq, timeout=10)
                if arrived is not None:
                    latencies[phase].append(arrived - sent)
                time.sleep(0.2)
            done = time.monotonic()
            got = self.sub.wait_count(tag, n, timeout=60)
            with self.sub.cond:
                arrivals = self.sub.first.get(tag, {}).values()
                first = (min(arrivals) - spawned_epoch) if arrivals else None
            after = pss_by_title(proc.pid)
        finally:
            stop.set()
            sampler.join()
            proc.stop()
        watcher = next((t for t in peaks if t.endswith(str(big))), None)
        idle = next((kb for t, kb in after.items() if t.endswith(str(probe))), None)
        self.results["scale"] = {
            "files": n, "received": self.sub.received(tag), "all_received": bool(got),
            "seconds": done - proc.spawned_at, "peak_pss_kb": peaks,
            "idle_watcher_pss_kb": idle, "names_kb": names_kb,
            "watcher_growth_kb": (peaks.get(watcher, 0) - idle) if idle else None,
            "probe_latency_s": latencies, "first_publish": first,
        }
        note(f"scale: {n} files in {done - proc.spawned_at:.1f} s")

    # (3) ----------------------------------------------------------------------------------
    def logic(self) -> None:
        from chariotd.watchers.actiondir import ActionDir
        from chariotd.watchers.letterhead import merge, parse_letterhead
        from chariotd.watchers.message_file import (
            build_message, full_topic, peek_priority, read_document)
        from chariotd.watchers.queue import Backlog, Entry

        def best(work, passes=7):
            times = []
            for _ in range(passes):
                started = time.perf_counter()
                work()
                times.append(time.perf_counter() - started)
            return min(times)

        costs = {}
        for variant in ("plain", "priorities"):
            directory = action_dir(self.work, f"logic-{variant}")
            write_files(directory, "logic", self.args.count, variant)
            actiondir = ActionDir(str(directory))
            names = actiondir.scan()
            letterhead_fd_path = str(self.letterhead)
            cached = {}

            def learn():
                backlog = Backlog()
                for name in names:
                    data, identity = actiondir.read(name, 1 << 20)
                    priority, slot = peek_priority(data)
                    backlog.add(Entry(name, identity[1], priority, slot))
                return backlog

            def learn_and_pop():
                backlog = learn()
                while backlog.pop() is not None:
                    pass

            def send(with_letterhead=False):
                for name in names:
                    data, _ = actiondir.read(name, 1 << 20)
                    document = read_document(data)
                    if with_letterhead:
                        fd = os.open(letterhead_fd_path, os.O_RDONLY)
                        head = os.read(fd, 1 << 20)
                        os.close(fd)
                        if cached.get("bytes") != head:
                            cached.update(bytes=head, parsed=parse_letterhead(head))
                        document = merge(cached["parsed"], document)
                    build_message(document, full_topic(document))

            n = len(names)
            learned = best(learn)
            costs[variant] = {"learn": learned / n * 1e6,
                              "pop": max(0.0, best(learn_and_pop) - learned) / n * 1e6,
                              "send": best(send) / n * 1e6}
            if variant == "plain":
                costs["lh-file"] = dict(costs["plain"],
                                        send=best(lambda: send(True)) / n * 1e6)
            actiondir.close()
        self.results["logic_us_per_file"] = costs
        note("logic: " + ", ".join(f"{v} {sum(c.values()):.1f} us" for v, c in costs.items()))

    def run(self) -> None:
        self.setup()
        self.logic()
        try:
            for rep in range(self.args.reps):
                for index in range(len(VARIANTS)):  # rotated: no variant always first
                    self.rate(VARIANTS[(index + rep) % len(VARIANTS)])
            if self.args.files:
                self.scale()
        finally:
            self.sub.stop()
            self.broker.stop()
            shutil.rmtree(self.work, ignore_errors=True)


def median(samples: List[dict], key: str) -> Optional[float]:
    values = [s[key] for s in samples if key in s]
    return statistics.median(values) if values else None


def render(results: Dict[str, object]) -> str:
    lines = ["", "drain (medians)   files/s from connected  from spawn  vs plain   "
             "CPU us/file: watcher  vs plain   link"]
    rates = results["rates"]
    plain = median(rates["plain"], "from_connected")
    plain_cpu = median(rates["plain"], "watcher_cpu_us_per_file")
    for variant in VARIANTS:
        connected = median(rates[variant], "from_connected")
        spawn = median(rates[variant], "from_spawn")
        ratio = f"{connected / plain:8.2f}" if connected and plain else "       -"
        cpu = median(rates[variant], "watcher_cpu_us_per_file")
        cpu_ratio = f"{cpu / plain_cpu:8.2f}" if cpu and plain_cpu else "       -"
        link = median(rates[variant], "link_cpu_us_per_file")
        errors = sum(1 for s in rates[variant] if "error" in s)
        lines.append(f"  {variant:<14} {connected or 0:>24.0f} {spawn or 0:>11.0f} {ratio}"
                     f" {cpu or 0:>22.0f} {cpu_ratio} {link or 0:>6.0f}"
                     + (f"   ({errors} failed runs)" if errors else ""))
    lines.append(f"  ({len(rates['plain'])} runs each; generator runs: a fifth of the files)")
    logic = results.get("logic_us_per_file")
    if logic:
        lines += ["", "watcher work per file, in-process (us, best of 7)   learn    pop   send"
                  "   total  vs plain"]
        base = sum(logic["plain"].values())
        for variant, cost in logic.items():
            total = sum(cost.values())
            lines.append(f"  {variant:<48} {cost['learn']:6.1f} {cost['pop']:6.1f} "
                         f"{cost['send']:6.1f} {total:7.1f} {total / base:8.2f}")
    scale = results.get("scale")
    if scale:
        lines += ["", f"backlog of {scale['files']} files at start: drained in "
                  f"{scale['seconds']:.1f} s, {scale['received']} received; the first "
                  f"published {scale['first_publish'] or 0:.1f} s after the spawn (the scan)",
                  "peak Pss per process (MB)"]
        for title, kb in sorted(scale["peak_pss_kb"].items()):
            label = title if title.startswith("chariotd") else role(title)
            lines.append(f"  {label[:70]:<70} {kb / 1024:7.1f}")
        if scale["idle_watcher_pss_kb"]:
            lines.append(f"  idle watcher of the same tree (empty directory)"
                         f"{'':<23}{scale['idle_watcher_pss_kb'] / 1024:7.1f}")
        lines.append(f"  the file names alone, as a Python list of str"
                     f"{'':<25}{scale['names_kb'] / 1024:7.1f}")
        if scale["watcher_growth_kb"] is not None:
            lines.append(f"  watcher growth: {scale['watcher_growth_kb'] / 1024:.1f} MB = "
                         f"{scale['watcher_growth_kb'] * 1024 / scale['files']:.0f} bytes "
                         "per file")
        lines.append("probe latency through the same link (ms)      n    p50    p99    max")
        for phase, values in scale["probe_latency_s"].items():
            if values:
                lines.append(f"  {phase:<40} {len(values):>5} {pct(values, 50) * 1000:6.1f} "
                             f"{pct(values, 99) * 1000:6.1f} {max(values) * 1000:6.1f}")
            else:
                lines.append(f"  {phase:<40}     0")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000,
                        help="backlog at start for the scale run (0 skips it)")
    parser.add_argument("--count", type=int, default=5000, help="files per drain-rate run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--quick", action="store_true",
                        help="--files 20000 --count 2000 --reps 1")
    args = parser.parse_args()
    if args.quick:
        args.files, args.count, args.reps = min(args.files, 20_000), 2000, 1
    compile_chariotd()
    run = Run(args)
    run.run()
    text = render(run.results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=BENCH).stdout.strip()
    (RESULTS / "backlog.json").write_text(json.dumps({
        "args": vars(args), "commit": commit, "python": platform.python_version(),
        "cpus": os.cpu_count(), "loadavg": os.getloadavg(), "results": run.results,
        "table": text}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
