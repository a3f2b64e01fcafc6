"""One message's path, process by process: CPU, system calls and mailbox frames per
message file of each process of chariotd's tree (link, messages watcher, parent) and of
the bare paho ceiling (bench/baseline.py), in the same run.

    .venv/bin/python bench/path_profile.py [--files 2000] [--bursts 4]

Needs: mosquitto and mosquitto_sub (apt mosquitto, mosquitto-clients), strace (apt).
Sets up bench/drain.py's TLS Mosquitto, subscriber and certstore, and runs three
passes of live bursts (drain.py's (c): FILES files renamed from tmp/ into new/ while
connected and idle), the publishers side by side, bursts alternating ABBA:

  1. clean: utime+stime (/proc/PID/stat, clock ticks) and on-CPU ns (schedstat, every
     thread) of each process, before/after each burst; nothing attached.
  2. strace: `strace -c -f -p PID` on each process (all its threads) for one burst per
     publisher; system calls per file by kind. strace slows the process; counts per
     file, not times, are what this pass is for.
  3. frames (chariotd only, a fresh tree): a sitecustomize on the tree's PYTHONPATH
     counts zmq frames sent and received per process, by `op`, and their bytes
     (pyzmq's Socket.send/recv wrapped; the tree forks, so every role has it).

Prints markdown tables. Measures; asserts nothing. For self time per function, run
bench/profile.py (py-spy) alongside.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import drain  # noqa: E402  (bench/drain.py, this directory)

SITE = '''
import json, os, signal, collections
_dir = os.environ.get("PATH_PROFILE_FRAMES")
if _dir:
    import msgpack, zmq
    from zmq.sugar.socket import Socket
    _counts = collections.Counter()
    _send, _recv = Socket.send, Socket.recv

    def _op(data):
        try:
            return str(msgpack.unpackb(bytes(data), raw=False).get("op"))
        except Exception:
            return "?"

    def send(self, data, *a, **k):
        op = _op(data)
        _counts["sent " + op] += 1
        _counts["sent " + op + " bytes"] += len(data)
        return _send(self, data, *a, **k)

    def recv(self, *a, **k):
        data = _recv(self, *a, **k)
        if isinstance(data, (bytes, bytearray)):
            op = _op(data)
            _counts["recv " + op] += 1
            _counts["recv " + op + " bytes"] += len(data)
        return data

    def _dump(*_):
        with open(os.path.join(_dir, "frames-%d.json" % os.getpid()), "w") as f:
            json.dump(dict(_counts), f)

    Socket.send, Socket.recv = send, recv
    signal.signal(signal.SIGUSR2, _dump)
'''


def title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            text = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
    if "baseline.py" in text:
        return "ceiling (baseline.py)"
    return text.split(" /")[0][:40]  # "chariotd: messages /DIR" -> the role


def proc_cpu(pid: int):
    """(utime+stime ticks, on-CPU ns of all threads) of one process."""
    fields = drain._stat_fields(pid)
    ticks = int(fields[11]) + int(fields[12]) if fields else 0
    ns = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ns += int(f.read().split()[0])
            except OSError:
                pass
    except OSError:
        pass
    return ticks, ns


def parse_strace(path: Path):
    """{syscall: calls} from a `strace -c` summary."""
    calls = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and re.match(r"^[\d.]+$", parts[0]) and parts[-1] != "total":
            try:
                calls[parts[-1]] = int(parts[3])
            except ValueError:
                pass
    return calls


def burst(bench, impl, running):
    directory, removals, proc = running[impl]
    tag = bench.tag(impl, "c")
    names = drain.prepare(directory, tag, bench.n)
    removals.expect(bench.n)
    started = time.monotonic()
    drain.move_in(directory, names)
    done = removals.wait(300)
    time.sleep(0.2)
    return bench.n / (done - started) if done else None


def start(bench, impls, env=None):
    running = {}
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        for impl in impls:
            directory = drain.action_dir(bench.work, f"p-{impl}-{bench.tags}")
            bench.tags += 1
            running[impl] = (directory, drain.Removals(directory / "new"),
                             bench.spawn(impl, directory))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for impl, (_, _, proc) in running.items():
        if proc.wait_connected(timeout=30) is None:
            sys.exit(f"{impl} did not connect:\n{proc.tail()}")
    time.sleep(1.0)
    return running


def stop(running):
    for _, removals, proc in running.values():
        proc.stop()
        removals.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--bursts", type=int, default=4)
    args = parser.parse_args()
    drain.compile_chariotd()
    settings = argparse.Namespace(count=args.files, reps=1, idle=0, starts=0,
                                  latency_count=0, timeout=300.0)
    bench = drain.Bench(settings)
    impls = ("chariotd", "baseline")
    try:
        bench.setup()
        print(f"load average at start: {os.getloadavg()}")
        running = start(bench, impls)
        pids = {impl: drain.tree_pids(proc.pid) for impl, (_, _, proc) in running.items()}

        # 1. clean CPU
        ticks, ns, rates = collections.Counter(), collections.Counter(), \
            collections.defaultdict(list)
        for rep in range(args.bursts):
            for impl in (impls if rep % 2 == 0 else impls[::-1]):
                before = {pid: proc_cpu(pid) for pid in pids[impl]}
                rates[impl].append(burst(bench, impl, running))
                for pid in pids[impl]:
                    after = proc_cpu(pid)
                    ticks[pid] += after[0] - before[pid][0]
                    ns[pid] += after[1] - before[pid][1]
        files = args.files * args.bursts
        print(f"\n### CPU per file, {args.bursts} live bursts of {args.files} files each, "
              f"load average after: {os.getloadavg()}\n")
        print("| publisher | process | us/file (schedstat) | us/file (utime+stime) | "
              "rate files/s (median) |")
        print("|---|---|---:|---:|---:|")
        for impl in impls:
            good = sorted(r for r in rates[impl] if r)
            total_ns = total_ticks = 0
            for pid in pids[impl]:
                total_ns += ns[pid]
                total_ticks += ticks[pid]
                print(f"| {impl} | {title(pid)} | {ns[pid] / 1e3 / files:.1f} | "
                      f"{ticks[pid] * 1e6 / drain.CLK_TCK / files:.1f} | |")
            print(f"| {impl} | **all** | {total_ns / 1e3 / files:.1f} | "
                  f"{total_ticks * 1e6 / drain.CLK_TCK / files:.1f} | "
                  f"{good[len(good) // 2] if good else 0:.0f} |")

        # 2. strace -c -f per process, one burst each
        out_dir = Path(tempfile.mkdtemp(prefix="path-profile-"))
        print(f"\n### System calls per file (strace -c -f -p PID, one burst of "
              f"{args.files} per publisher; raw summaries in {out_dir})\n")
        tables = {}
        for impl in impls:
            tracers = []
            for pid in pids[impl]:
                out = out_dir / f"strace-{impl}-{pid}.txt"
                tracers.append((pid, out, subprocess.Popen(
                    ["strace", "-c", "-f", "-p", str(pid), "-o", str(out)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
            time.sleep(1.0)
            burst(bench, impl, running)
            for _, _, tracer in tracers:
                tracer.send_signal(signal.SIGINT)
            for pid, out, tracer in tracers:
                tracer.wait(30)
                tables[(impl, pid)] = parse_strace(out)
        for (impl, pid), calls in tables.items():
            total = sum(calls.values())
            top = sorted(calls.items(), key=lambda kv: -kv[1])[:14]
            print(f"- {impl} / {title(pid)}: **{total / args.files:.2f} syscalls/file**: "
                  + ", ".join(f"{name} {n / args.files:.2f}" for name, n in top
                              if n / args.files >= 0.01))
        print(f"\nload average after strace pass: {os.getloadavg()}")
        stop(running)

        # 3. frames per file (chariotd only, instrumented tree)
        site = out_dir / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITE)
        running = start(bench, ("chariotd",), {"PYTHONPATH": str(site),
                                               "PATH_PROFILE_FRAMES": str(out_dir)})
        tree = drain.tree_pids(running["chariotd"][2].pid)

        def dump():
            for pid in tree:
                os.kill(pid, signal.SIGUSR2)
            time.sleep(0.5)
            found = {}
            for pid in tree:
                path = out_dir / f"frames-{pid}.json"
                found[pid] = json.loads(path.read_text()) if path.exists() else {}
            return found

        before = dump()
        for _ in range(2):
            burst(bench, "chariotd", running)
        after = dump()
        files = 2 * args.files
        print(f"\n### ZeroMQ frames per file (2 bursts of {args.files}, instrumented tree)\n")
        print("| process | direction op | frames/file | bytes/frame | files/frame |")
        print("|---|---|---:|---:|---:|")
        for pid in tree:
            delta = {k: v - before[pid].get(k, 0) for k, v in after[pid].items()}
            for key in sorted(k for k in delta if not k.endswith(" bytes")):
                n = delta[key]
                if n <= 0:
                    continue
                size = delta.get(key + " bytes", 0) / n
                print(f"| {title(pid)} | {key} | {n / files:.3f} | {size:.0f} | "
                      f"{files / n:.1f} |")
        stop(running)
        print(f"\nload average at end: {os.getloadavg()}")
    finally:
        drain.stop_all()
        bench.close()


if __name__ == "__main__":
    main()
