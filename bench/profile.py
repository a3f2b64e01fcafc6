"""Where a publisher's time goes while it drains: py-spy on every process of the tree.

    .venv/bin/pip install py-spy        # not a dependency of chariotd
    .venv/bin/python bench/profile.py [--impl chariotd|baseline] [--files 4000] [--bursts 5]

Sets up the same TLS Mosquitto, subscriber and certstore as bench/drain.py, starts the
publisher, attaches `py-spy record --idle --nonblocking` to each of its processes, drops
BURSTS live bursts of FILES files (as drain.py's (c)), then prints the CPU time and
voluntary context switches (sleeps) per file of every thread involved (publisher, its
zmq I/O threads, mosquitto, mosquitto_sub, this script), and per profiled process the
share of samples in poll and the functions with the most self and inclusive samples.
`--no-spy` gives the CPU table alone, undisturbed; `--native` adds C frames. Raw collapsed stacks are kept in bench/results/profile-*.txt
(feed them to flamegraph.pl or speedscope for a picture).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import drain  # noqa: E402  (bench/drain.py, this directory)

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")
IDLE_FUNCS = ("poll", "select", "epoll_wait", "wait", "read")


def short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "/chariotd/", "/bench/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path})"


def summarize(raw_path: Path, top: int) -> str:
    self_counts, incl_counts = collections.Counter(), collections.Counter()
    total = idle = 0
    with open(raw_path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = [short(x) for x in stack.split(";") if x]
            if not frames:
                continue
            total += n
            leaf = frames[-1]
            # Asleep in the loop's poll: zmq's Poller.poll or select.poll().poll
            if leaf.startswith(("poll (", "_poll (")) or " poll (" in f" {leaf}" or \
                    "zmq/sugar/poll" in leaf:
                idle += n
            self_counts[leaf] += n
            for name in set(frames):
                incl_counts[name] += n
    if not total:
        return "  no samples\n"
    out = [f"  {total} samples, {100 * idle / total:.0f}% waiting in poll "
           f"(busy {100 * (total - idle) / total:.0f}%)",
           "  self (% of all samples):"]
    for name, n in self_counts.most_common(top):
        out.append(f"    {100 * n / total:5.1f}%  {name}")
    out.append("  inclusive (% of all samples):")
    for name, n in incl_counts.most_common(top + 8):
        out.append(f"    {100 * n / total:5.1f}%  {name}")
    return "\n".join(out) + "\n"


def thread_cpu(pids):
    """On-CPU nanoseconds of every thread of PIDS, keyed 'title [thread name]'."""
    found = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode().strip()[:50]
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    found[f"{title} [{tid} {comm}]"] = int(f.read().split()[0])
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    found[f"{title} [{tid} {comm}] wakeups"] = sum(
                        int(line.split()[1]) for line in f
                        if line.startswith("voluntary_ctxt_switches"))
            except OSError:
                pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=("chariotd", "baseline"), default="chariotd")
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--native", action="store_true",
                        help="py-spy --native: C frames too (zmq, ssl, the kernel calls)")
    parser.add_argument("--no-spy", action="store_true",
                        help="only the CPU accounting per thread, without py-spy attached")
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.access(pyspy, os.X_OK):
        sys.exit("py-spy not found: .venv/bin/pip install py-spy")

    drain.compile_chariotd()
    settings = argparse.Namespace(count=args.files, reps=1, idle=0, starts=0,
                                  latency_count=0, timeout=300.0)
    bench = drain.Bench(settings)
    spies = []
    outputs = []
    try:
        bench.setup()
        directory = drain.action_dir(bench.work, "profile")
        removals = drain.Removals(directory / "new")
        proc = bench.spawn(args.impl, directory)
        if proc.wait_connected(timeout=30) is None:
            sys.exit(f"{args.impl} did not connect:\n{proc.tail()}")
        time.sleep(1.0)
        drain.RESULTS.mkdir(parents=True, exist_ok=True)
        watched = drain.tree_pids(proc.pid) + [bench.broker.process.pid,
                                               bench.sub.process.pid, os.getpid()]
        for pid in ([] if args.no_spy else drain.tree_pids(proc.pid)):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode().strip()
            label = re.sub(r"[^a-z0-9]+", "-", title.split("/")[-1].lower())[:40].strip("-")
            out = drain.RESULTS / f"profile-{args.impl}-{label}.txt"
            spy = subprocess.Popen([pyspy, "record", "--pid", str(pid), "--rate",
                                    str(args.rate), "--format", "raw", "--idle",
                                    *(["--native"] if args.native else ["--nonblocking"]),
                                    "--output", str(out)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            spies.append(spy)
            outputs.append((title, pid, out))
        time.sleep(1.0)
        rates = []
        used = collections.Counter()
        busy = 0.0
        for burst in range(args.bursts):
            tag = bench.tag(args.impl, "p")
            names = drain.prepare(directory, tag, args.files)
            removals.expect(args.files)
            before = thread_cpu(watched)
            started = time.monotonic()
            drain.move_in(directory, names)
            done = removals.wait(300)
            busy += (done or time.monotonic()) - started
            after = thread_cpu(watched)
            for key, ns in after.items():
                used[key] += ns - before.get(key, ns)
            if done is not None:
                rates.append(args.files / (done - started))
            time.sleep(0.3)
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(30)
        proc.stop()
        removals.close()
        how = "without py-spy" if args.no_spy else \
            f"under py-spy (--rate {args.rate}, " + \
            ("native, blocking: slows it a lot)" if args.native else "nonblocking)")
        print(f"{args.impl}: {args.bursts} live bursts of {args.files} files {how}: "
              + ", ".join(f"{r:.0f}" for r in rates) + " files/s")
        print(f"\nCPU per thread while draining ({busy:.2f} s in all; {os.cpu_count()} CPUs; "
              f"the bench's own threads include the renames), % of one CPU:")
        files = args.files * args.bursts
        print("   %cpu  us/file  wakeups/file  thread")
        for key, ns in used.most_common():
            if key.endswith(" wakeups") or ns < 1e6:
                continue
            print(f"  {100 * ns / 1e9 / busy:5.1f}%  {ns / 1e3 / files:7.1f}  "
                  f"{used[key + ' wakeups'] / files:12.2f}  {key}")
        total = sum(ns for key, ns in used.items() if not key.endswith(" wakeups"))
        print(f"  {100 * total / 1e9 / busy:5.1f}%  {total / 1e3 / files:7.1f}  "
              f"{'':12}  total")
        for title, pid, out in outputs:
            print(f"\n== {title} (pid {pid}) -> {out}")
            print(summarize(out, args.top) if out.exists() else "  (no output)\n")
    finally:
        for spy in spies:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
        drain.stop_all()
        bench.close()


if __name__ == "__main__":
    main()
