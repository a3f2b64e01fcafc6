"""Device-shadow latency of chariotd's services path against chariotd-sim on loopback.

    .venv/bin/python bench/shadow.py [--quick] [--count N] [--reps R]

The real chariotd tree runs with `--services=THING:DIR` against chariotd-sim (Mosquitto
with TLS and client certificates on 127.0.0.1, plus the shadow service, in this process
through the `Simulator` library API). The cloud changes the desired state of one
service key at a time, with a new value each time, and waits until the change is
finished (its reported update accepted, plus a short gap) before the next one. For each
change, from the moment the simulator publishes `update/delta` (a hook on its paho
client records the time just before the publish call; the `set_desired` call time is
kept too), it measures the time until:

  (1) outfile: the outfile holds the new value. A recorder subprocess (one poll loop,
      so this process's threads and the in-process simulator never delay its clock)
      watches the outfiles' directory with inotify (IN_MOVED_TO / IN_CLOSE_WRITE),
      stamps the event, then reads the file and only counts it if it parses to the
      new value;
  (2) notify: the service's notify command ran. It is `echo KEY > FIFO` (a shell
      builtin, no exec); the recorder holds the FIFO open and stamps each line as it
      arrives;
  (3) reported accepted: the first `$aws/things/THING/shadow/update/accepted` whose
      state.reported carries the new value, stamped by mosquitto_sub's own clock (%U)
      as the simulator's `iotsim` identity sees it.

Context, per change: when the same mosquitto_sub saw the delta (the broker's delivery,
as a stand-in for when chariotd's socket got it), when the simulator received
chariotd's reported update and when it published the accepted answer (so the
simulator's own share, mostly its fsync'd shadow store, can be told apart), and the
CPU used by the chariotd tree per change.

Scenarios: one service on the thing, and 200 services on the thing with changes to one
of them (every outfile exists beforehand, so the reported state holds all 200 keys).
Runs alternate between the scenarios; each run has its own thing, services directory
and chariotd tree. Every timestamp is CLOCK_REALTIME (time.time / mosquitto_sub %U).

Prints a table (metric | p50 | p90 | p99 | p50 over runs) and writes every raw sample and
the environment to bench/results/shadow.json. It measures; it never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import drain
from drain import Proc, environment, markdown_table, pct, tree_cpu

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
WARMUP = 10
GAP = 0.05           # after a change is finished, before the next one (chariotd reads the
                     # accepted answer and reaps the notify command meanwhile)
CHANGE_TIMEOUT = 10.0
READY = re.compile(r"shadow (fetched|created)")
NODE = {"outfile": 2.4, "notify": 6.4, "accepted": 5.8}  # original daemon's p50, ms


# -- the recorder: a separate process with one poll loop -----------------------------------
def record(outdir: str, fifo: str) -> None:
    """Print `EPOCH out NAME CONTENT-AS-JSON-STRING` for each outfile replaced in OUTDIR and
    `EPOCH notify LINE` for each line written to FIFO; exit when stdin closes."""
    from inotify_simple import INotify, flags

    inotify = INotify()
    inotify.add_watch(outdir, flags.MOVED_TO | flags.CLOSE_WRITE)
    fifo_fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # never EOF, writers never block
    poller = select.poll()
    for fd in (inotify.fileno(), fifo_fd, 0):
        poller.register(fd, select.POLLIN)
    out, pending = sys.stdout, b""
    out.write("ready\n")
    out.flush()
    while True:
        for fd, _ in poller.poll():
            now = time.time()
            lines = []
            if fd == 0:
                return
            if fd == fifo_fd:
                pending += os.read(fifo_fd, 65536)
                *done, pending = pending.split(b"\n")
                lines += [f"{now:.6f} notify {line.decode(errors='replace')}" for line in done]
            else:
                for event in inotify.read(timeout=0):
                    if event.name and not event.name.startswith("."):
                        try:
                            with open(os.path.join(outdir, event.name)) as f:
                                text = f.read()
                        except OSError:
                            continue
                        lines.append(f"{now:.6f} out {event.name} {json.dumps(text)}")
            if lines:
                out.write("\n".join(lines) + "\n")
                out.flush()


# -- the bench process --------------------------------------------------------------------
class Change:
    __slots__ = ("seq", "key", "value", "t")

    def __init__(self, seq: int, key: str, value: dict):
        self.seq, self.key, self.value = seq, key, value
        self.t: Dict[str, float] = {}   # event -> epoch seconds (first occurrence)


class Events:
    """Reads the recorder's and mosquitto_sub's lines (each stamped by its producer) and
    matches them against the change in progress."""

    def __init__(self):
        self.cond = threading.Condition()
        self.current: Optional[Change] = None
        self.extra_notifies = 0
        self.stray: List[str] = []

    def follow(self, stream, parse) -> threading.Thread:
        def run():
            for raw in stream:
                parse(raw.decode(errors="replace").rstrip("\n"))
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def _mark(self, event: str, when: float, check=lambda change: True) -> None:
        with self.cond:
            change = self.current
            if change is None or event in change.t or not check(change):
                if event == "notify" and change is not None and event in change.t:
                    self.extra_notifies += 1
                return
            change.t[event] = when
            self.cond.notify_all()

    def recorder_line(self, line: str) -> None:
        parts = line.split(" ", 3)
        if len(parts) < 3:
            return
        when = float(parts[0])
        if parts[1] == "notify":
            self._mark("notify", when, lambda c: parts[2] == c.key)
        elif parts[1] == "out" and len(parts) == 4:
            def holds_value(change):
                if parts[2] != change.key:
                    return False
                try:
                    return json.loads(json.loads(parts[3])) == change.value
                except ValueError:
                    return False
            self._mark("outfile", when, holds_value)

    def mqtt_line(self, line: str) -> None:
        try:
            stamp, topic, payload = line.split(" ", 2)
            when, doc = float(stamp), json.loads(payload)
        except ValueError:
            return
        if topic.startswith("bench/probe"):
            with self.cond:
                self.stray.append("probe")
                self.cond.notify_all()
            return
        state = doc.get("state") if isinstance(doc, dict) else None
        if not isinstance(state, dict):
            return
        # Deltas and reported updates carry only what differs ({"v": seq}).
        if topic.endswith("/update/delta"):
            self._mark("delta_seen", when, lambda c: carries(state, c))
        elif topic.endswith("/update/accepted"):
            self._mark("accepted", when, lambda c: carries(state.get("reported"), c))

    def wait(self, change: Change, events, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: all(e in change.t for e in events), timeout)


def carries(section, change: Change) -> bool:
    value = section.get(change.key) if isinstance(section, dict) else None
    return isinstance(value, dict) and value.get("v") == change.value["v"]


class Hooks:
    """Wraps the in-process simulator: when it publishes update/delta, when it receives a
    shadow update carrying `reported`, when it publishes that update's accepted answer."""

    def __init__(self, sim, events: Events):
        self.events = events
        service = sim.service
        publish, request = service.client.publish, service.request

        def hooked_publish(topic, payload=None, *args, **kwargs):
            change = events.current
            if change is not None:
                now = time.time()
                if topic.endswith("/update/delta"):
                    change.t.setdefault("delta_published", now)
                elif topic.endswith("/update/accepted") and b'"reported"' in payload:
                    change.t.setdefault("accepted_published", now)
            return publish(topic, payload, *args, **kwargs)

        def hooked_request(topic, payload):
            change = events.current
            if change is not None and topic.endswith("/update") and b'"reported"' in payload:
                change.t.setdefault("update_received", time.time())
            return request(topic, payload)

        service.client.publish = hooked_publish
        service.request = hooked_request


class Subscriber:
    """mosquitto_sub as `iotsim` on the thing's update/delta and update/accepted topics,
    `%U %t %p` (its own receive clock); like drain.Subscriber, checked with a probe."""

    def __init__(self, sim, thing: str, events: Events):
        prefix = f"$aws/things/{thing}/shadow/update"
        paths = sim.paths
        self.argv = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(sim.port),
                     "--cafile", str(paths.cafile), "--cert", str(paths.service_cert),
                     "--key", str(paths.service_key), "-i", f"bench-shadow-{os.getpid()}",
                     "-q", "1", "-t", f"{prefix}/delta", "-t", f"{prefix}/accepted",
                     "-t", f"bench/probe/{thing}", "-F", "%U %t %p"]
        self.sim, self.thing, self.events = sim, thing, events
        self.process = None

    def start(self) -> "Subscriber":
        drain._live.append(self)
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.events.follow(self.process.stdout, self.events.mqtt_line)
        for _ in range(40):
            self.sim.publish(f"bench/probe/{self.thing}", {"probe": 1})
            with self.events.cond:
                if self.events.cond.wait_for(lambda: self.events.stray, 0.5):
                    return self
        raise RuntimeError("mosquitto_sub never received its probe message")

    def stop(self) -> None:
        stop_process(self.process)
        if self in drain._live:
            drain._live.remove(self)


class Recorder:
    def __init__(self, outdir: Path, fifo: Path, events: Events):
        self.argv = [sys.executable, str(Path(__file__).resolve()), "--record",
                     str(outdir), str(fifo)]
        self.events = events
        self.process = None

    def start(self) -> "Recorder":
        drain._live.append(self)
        self.process = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, start_new_session=True)
        if self.process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the recorder did not start")
        self.events.follow(self.process.stdout, self.events.recorder_line)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()  # EOF: it exits
        stop_process(self.process)
        if self in drain._live:
            drain._live.remove(self)


def stop_process(process: Optional[subprocess.Popen]) -> None:
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="chariotd-bench-shadow-"))
        self.raw: Dict[str, List[dict]] = {}
        self.runs = 0
        self.timeouts = 0

    def setup(self) -> None:
        from chariotd.sim import Simulator
        self.sim = Simulator(self.work / "sim", port=0)
        drain._live.append(self.sim)
        self.sim.start()
        self.events = Events()
        Hooks(self.sim, self.events)

    def note(self, text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    def services(self, root: Path, count: int, fifo: Path) -> List[str]:
        svcs, out = root / "svcs", root / "out"
        svcs.mkdir(parents=True)
        out.mkdir()
        keys = [f"svc{i:03d}" for i in range(count)]
        for key in keys:
            (svcs / f"{key}.js").write_text(
                "module.exports = {\n"
                f"  key: '{key}',\n"
                f"  outfile: '{out / key}',\n"
                "  outformat: 'JSON',\n"
                "  informat: 'JSON',\n"
                f"  notifycmd: 'echo {key} > {fifo}',\n"
                "};\n")
            (out / key).write_text(json.dumps({"v": 0}) + "\n")
        return keys

    def run_one(self, count_services: int) -> None:
        self.runs += 1
        thing = f"bench{count_services}-r{self.runs}"
        root = self.work / thing
        root.mkdir()
        fifo = root / "notify.fifo"
        os.mkfifo(fifo)
        keys = self.services(root, count_services, fifo)
        target = keys[len(keys) // 2]
        certstore = self.sim.device(thing)
        recorder = Recorder(root / "out", fifo, self.events).start()
        subscriber = Subscriber(self.sim, thing, self.events).start()
        exe = Path(sys.executable).parent / "chariotd"
        proc = Proc("chariotd", [str(exe), f"--clientid={thing}",
                                 f"--cacert={self.sim.cafile}", f"--certstore={certstore}",
                                 f"--services={thing}:{root / 'svcs'}"],
                    root / "chariotd.log").start()
        result: Dict[str, object] = {"services": count_services, "thing": thing,
                                     "key": target, "changes": []}
        try:
            if not self._ready(proc, thing, keys):
                result["error"] = f"not ready: {proc.tail()}"
                return
            time.sleep(0.5)
            cpu_before = None
            for seq in range(1, WARMUP + self.args.count + 1):
                if seq == WARMUP + 1:
                    cpu_before = tree_cpu(proc.pid)
                change = self.change(thing, target, seq)
                if seq > WARMUP:
                    result["changes"].append({"seq": seq, **change.t})
            cpu_after = tree_cpu(proc.pid)
            result["tree_cpu_ms_per_change"] = \
                (cpu_after["ns"] - cpu_before["ns"]) / 1e6 / self.args.count
            result["tree_switches_per_change"] = \
                (cpu_after["switches"] - cpu_before["switches"]) / self.args.count
            result["extra_notifies"] = self.events.extra_notifies
            self.events.extra_notifies = 0
            shadow = self.sim.get_shadow(thing) or {}
            result["left_in_desired"] = shadow.get("state", {}).get("desired", {})
            result["left_in_delta"] = shadow.get("state", {}).get("delta", {})
            if not proc.alive():
                result["error"] = f"exited: {proc.tail()}"
        finally:
            proc.stop()
            subscriber.stop()
            recorder.stop()
            self.raw.setdefault(str(count_services), []).append(result)
        summary = summarize_run(result)
        result["summary"] = summary
        self.note(f"{count_services} service(s), run {self.runs}: " + ", ".join(
            f"{name} p50 {summary[name]['p50']:.2f}" for name in ("outfile", "notify",
                                                                  "accepted")
            if name in summary) + f" ms; CPU {result['tree_cpu_ms_per_change']:.2f} ms/change"
            + (f"; {summary['incomplete']} incomplete" if summary["incomplete"] else ""))

    def _ready(self, proc: Proc, thing: str, keys: List[str]) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.alive():
            if any(READY.search(line) for _, line in list(proc.lines)):
                reported = (self.sim.get_shadow(thing) or {}).get("state", {}).get(
                    "reported", {})
                if all(key in reported for key in keys):
                    return True
            time.sleep(0.05)
        return False

    def change(self, thing: str, key: str, seq: int) -> Change:
        change = Change(seq, key, {"v": seq, "mode": "bench"})
        with self.events.cond:
            self.events.current = change
        change.t["set_desired"] = time.time()
        self.sim.set_desired(thing, None, {key: change.value})
        change.t["set_desired_returned"] = time.time()
        wanted = ("outfile", "notify", "accepted", "delta_seen")
        if not self.events.wait(change, wanted, CHANGE_TIMEOUT):
            self.timeouts += 1
            if self.timeouts <= 5:
                self.note(f"change {seq} of {key}: no {[e for e in wanted if e not in change.t]}"
                          f" within {CHANGE_TIMEOUT:g} s")
        time.sleep(GAP)
        with self.events.cond:
            self.events.current = None
        return change

    def close(self) -> None:
        import shutil
        shutil.rmtree(self.work, ignore_errors=True)


# -- report -------------------------------------------------------------------------------
SPANS = {  # name: (from, to, label)
    "outfile": ("delta_published", "outfile", "delta published -> outfile holds new value"),
    "notify": ("delta_published", "notify", "delta published -> notify command ran"),
    "accepted": ("delta_published", "accepted", "delta published -> reported accepted"),
    "set_outfile": ("set_desired", "outfile", "set_desired called -> outfile"),
    "set_notify": ("set_desired", "notify", "set_desired called -> notify"),
    "set_accepted": ("set_desired", "accepted", "set_desired called -> reported accepted"),
    "sim_delta": ("set_desired", "delta_published", "(sim) set_desired -> delta published"),
    "delta_seen": ("delta_published", "delta_seen",
                   "(broker) delta published -> seen by a subscriber"),
    "seen_outfile": ("delta_seen", "outfile", "delta seen by a subscriber -> outfile"),
    "seen_notify": ("delta_seen", "notify", "delta seen by a subscriber -> notify"),
    "seen_update": ("delta_seen", "update_received",
                    "delta seen by a subscriber -> sim receives the reported update"),
    "device_part": ("delta_published", "update_received",
                    "delta published -> sim receives the reported update"),
    "sim_accept": ("update_received", "accepted_published",
                   "(sim) update received -> accepted published"),
}
TABLE = ["outfile", "notify", "accepted", "delta_seen", "seen_outfile", "seen_notify",
         "seen_update", "sim_accept"]


def summarize_run(result: dict) -> dict:
    changes = result.get("changes", [])
    summary: Dict[str, object] = {
        "incomplete": sum(1 for c in changes
                          if not all(k in c for k in ("outfile", "notify", "accepted")))}
    for name, (start, end, _) in SPANS.items():
        values = [(c[end] - c[start]) * 1000 for c in changes if start in c and end in c]
        if values:
            summary[name] = {"n": len(values), "p50": pct(values, 50), "p90": pct(values, 90),
                             "p99": pct(values, 99), "min": min(values), "max": max(values),
                             "mean": statistics.mean(values)}
    return summary


def table(raw: Dict[str, List[dict]]) -> List[dict]:
    rows = []
    for services, runs in raw.items():
        summaries = [r["summary"] for r in runs if "summary" in r]
        for name in TABLE:
            per_run = [s[name] for s in summaries if name in s]
            if not per_run:
                continue
            row = {"services": int(services), "metric": name, "label": SPANS[name][2],
                   "runs": len(per_run), "samples": sum(s["n"] for s in per_run)}
            for q in ("p50", "p90", "p99"):
                row[q] = statistics.median(s[q] for s in per_run)
                row[f"{q}_runs"] = [s[q] for s in per_run]
            row["node_p50"] = NODE.get(name)
            rows.append(row)
        cpu = [r["tree_cpu_ms_per_change"] for r in runs if "tree_cpu_ms_per_change" in r]
        if cpu:
            rows.append({"services": int(services), "metric": "cpu",
                         "label": "chariotd tree CPU per change (ms)", "runs": len(cpu),
                         "p50": statistics.median(cpu), "p50_runs": cpu})
    return rows


def render(rows: List[dict]) -> str:
    header = ("metric [ms]", "p50", "p90", "p99", "p50 over runs (min-max)")
    body = []
    for r in rows:
        label = f"{r['services']} svc: {r['label']}"
        if r["metric"] == "cpu":
            body.append((label, f"{r['p50']:.2f}", "", "",
                         f"{min(r['p50_runs']):.2f}-{max(r['p50_runs']):.2f}"))
            continue
        body.append((label, f"{r['p50']:.2f}", f"{r['p90']:.2f}", f"{r['p99']:.2f}",
                     f"{min(r['p50_runs']):.2f}-{max(r['p50_runs']):.2f} ({r['runs']})"))
    return markdown_table(header, body)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--record":
        record(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="200 changes, 1 run per scenario (~30 s)")
    parser.add_argument("--count", type=int,
                        help="timed changes per run, at least 200 (default 300)")
    parser.add_argument("--reps", type=int, help="runs per scenario (default 3)")
    parser.add_argument("--services", default="1,200",
                        help="comma-separated service counts (default 1,200)")
    parser.add_argument("--output", type=Path, default=RESULTS / "shadow.json")
    args = parser.parse_args()
    args.count = max(200, args.count or (200 if args.quick else 300))
    args.reps = args.reps or (1 if args.quick else 3)
    scenarios = [int(n) for n in args.services.split(",")]
    drain.compile_chariotd()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    try:
        bench.setup()
        bench.note(f"workdir {bench.work}; broker {bench.sim.endpoint}; "
                   f"{args.count} changes x {args.reps} runs per scenario")
        for _ in range(args.reps):
            for services in scenarios:
                bench.run_one(services)
    finally:
        drain.stop_all()
        bench.close()

    rows = table(bench.raw)
    print(render(rows))
    env = environment()
    env["workdir_fs"] = subprocess.run(["stat", "-f", "-c", "%T", tempfile.gettempdir()],
                                       capture_output=True, text=True).stdout.strip()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {"count": args.count, "reps": args.reps, "warmup": WARMUP,
                     "gap_s": GAP, "scenarios": scenarios},
        "environment": env, "node_p50_ms": NODE, "table": rows, "raw": bench.raw},
        indent=2, default=str) + "\n")
    print(f"\nwritten to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
