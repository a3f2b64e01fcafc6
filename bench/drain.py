"""Drain, latency, memory, start-up and idle-CPU benchmark of chariotd's messages path,
next to a bare paho-mqtt publisher (bench/baseline.py) as the ceiling.

    .venv/bin/python bench/drain.py [--quick] [--count N] [--reps R] [--idle S]

Both publishers run in the same run against the same TLS Mosquitto on loopback, one at
a time, with the same files and the same in-flight window (10):

  (a) backlog at start: N files already in new/ when the process is spawned; rate is
      N / (spawn -> new/ empty), and also N / (connected -> new/ empty)
  (b) backlog after an outage: broker stopped, publisher spawned, N files dropped,
      broker started again on the same port; rate is N / (broker listening again ->
      new/ empty), and also from the reconnect (the publisher's "connected" line)
  (c) live drop: N files written to tmp/ and then renamed into new/ as fast as
      possible while the publisher is connected and idle; N / (first rename -> empty)
  (d) latency: rename into new/ -> arrival at the subscriber (mosquitto_sub's own
      receive timestamp), one message at a time, each waited for (and its file
      unlinked) before the next; p50/p99
  (e) memory: sum of Pss from /proc/PID/smaps_rollup over the process and all its
      descendants; idle (2 s after connecting, nothing sent yet), after the backlog
      drain, and after the live bursts and latency run
  (f) start-up: spawn -> the "connected to" log line (for the baseline: its CONNACK
      callback's line), as read from the process's stderr pipe
  (g) idle CPU: utime+stime (and context switches) of the whole tree over S seconds
      with nothing to do, after the bursts

The subscriber is mosquitto_sub (C, so it is never the bottleneck) with a persistent
session (clean session off, QoS 1) on a broker with persistence on, so it sees every
message, including those published while it reconnects after the outage in (b).
"new/ empty" is observed through inotify on new/ (count of files deleted or moved out).

Prints a table (metric | chariotd | baseline | ratio) and writes the same, with every
raw sample and the environment, to bench/results/latest.json. It measures; it never
asserts on time.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from inotify_simple import INotify, flags

from chariotd.sim import mosquitto as sim_mosquitto
from chariotd.sim import pki
from chariotd.sim.mosquitto import OPEN_ACL, SERVICE_USER, Mosquitto

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
INFLIGHT = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAD = "0123456789abcdef" * 4  # a 64-byte field: payloads of ~110 bytes, telemetry-sized

_live: List[object] = []  # everything started, stopped in the finally of main()


# -- process tree measurements ----------------------------------------------------------
def _stat_fields(pid: int) -> Optional[List[str]]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree_pids(root: int) -> List[int]:
    parents: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        found.extend(frontier)
    return [pid for pid in found if pid in parents]


def pss_by_process(root: int) -> Dict[int, Tuple[str, int]]:
    """{pid: (process title, Pss kB)} over the tree of ROOT."""
    found = {}
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                text = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
        if match:
            found[pid] = (title, int(match.group(1)))
    return found


def tree_pss_kb(root: int) -> Dict[str, object]:
    per = {f"{pid} {title[:60]}": kb for pid, (title, kb) in pss_by_process(root).items()}
    return {"total_kb": sum(per.values()), "processes": per}


def tree_cpu(root: int) -> Dict[str, int]:
    """CPU of every thread of every process in the tree: utime+stime in clock ticks
    (/proc/PID/stat, threads included), on-CPU nanoseconds and context switches summed
    over /proc/PID/task/*/ (zmq's I/O threads included)."""
    ticks = nanoseconds = switches = 0
    for pid in tree_pids(root):
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    nanoseconds += int(f.read().split()[0])
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt")):
                            switches += int(line.split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return {"ticks": ticks, "ns": nanoseconds, "switches": switches}


# -- processes ----------------------------------------------------------------------------

def stop_all() -> None:
    """Stop everything a bench started, newest first, whatever fails on the way."""
    for thing in reversed(list(_live)):
        try:
            thing.stop()
        except Exception as error:  # keep stopping the rest
            print(f"warning: stopping {thing}: {error}", file=sys.stderr)


def print_pss_cost(flag: str, totals: Dict[bool, List[int]],
                   processes: Dict[str, int]) -> None:
    """The tree's PSS without and with FLAG (medians of TOTALS[False], TOTALS[True], in
    kB) and what each process of one run with FLAG held."""
    import statistics
    for name, kb in sorted(processes.items()):
        print(f"  {kb:6d} kB  {name}")
    plain, with_flag = (statistics.median(totals[k]) for k in (False, True))
    print(f"tree PSS without {flag}: {plain:.0f} kB (median of {totals[False]})")
    print(f"tree PSS with {flag}:    {with_flag:.0f} kB (median of {totals[True]})")
    print(f"cost of {flag}: {with_flag - plain:+.0f} kB")


def compile_chariotd() -> None:
    """Write chariotd's bytecode (.pyc) as `pip install` does for an installed package.
    An editable install run with PYTHONDONTWRITEBYTECODE=1 (as in this project's
    development environment) would otherwise compile every module from source at
    every start: ~50 ms of start-up that no device pays."""
    import compileall

    import chariotd
    compileall.compile_dir(os.path.dirname(chariotd.__file__), quiet=1)


class Proc:
    """A publisher process in its own process group; stderr lines timestamped as read."""

    def __init__(self, name: str, argv: List[str], log_path: Path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.lines: List[tuple] = []
        self.connected = threading.Condition()
        self.connect_times: List[float] = []
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "Proc":
        _live.append(self)
        self.spawned_at = time.monotonic()
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self) -> None:
        with open(self.log_path, "ab") as log:
            for raw in self.process.stdout:
                now = time.monotonic()
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append((now, line))
                if "connected to " in line:
                    with self.connected:
                        self.connect_times.append(now)
                        self.connected.notify_all()

    def wait_connected(self, after: float = 0.0, timeout: float = 30.0) -> Optional[float]:
        """The first time a "connected" line was read at or after AFTER (monotonic)."""
        deadline = time.monotonic() + timeout
        with self.connected:
            while True:
                later = [t for t in self.connect_times if t >= after]
                if later:
                    return later[0]
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive():
                    return None
                self.connected.wait(min(left, 0.2))

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of the tree is left
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.reader.join(5)
        self.process.stdout.close()
        if self in _live:
            _live.remove(self)

    def tail(self, n: int = 15) -> str:
        return "\n".join(line for _, line in self.lines[-n:])


class Subscriber:
    """mosquitto_sub on bench/#, QoS 1, persistent session; records when each message
    arrived by mosquitto_sub's own clock (%U: CLOCK_REALTIME with nanoseconds)."""

    SEQ = re.compile(r'"seq":(\d+)')

    def __init__(self, broker: Mosquitto, cafile, certfile, keyfile):
        self.cond = threading.Condition()
        self.first: Dict[str, Dict[int, float]] = {}   # tag -> seq -> arrival (epoch s)
        self.arrivals: Dict[str, int] = {}              # tag -> arrivals, duplicates too
        self.tls = ["--cafile", str(cafile), "--cert", str(certfile), "--key", str(keyfile)]
        self.broker = broker
        self.argv = ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), *self.tls,
                     "-i", f"bench-sub-{os.getpid()}", "-c", "-q", "1", "-k", "60",
                     "-t", "bench/#", "-F", "%U %t %p"]
        self.process = None

    def start(self) -> "Subscriber":
        _live.append(self)
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        threading.Thread(target=self._read, daemon=True).start()
        # Subscribed once a probe comes back.
        for attempt in range(40):
            subprocess.run(["mosquitto_pub", "-h", self.broker.host, "-p",
                            str(self.broker.port), *self.tls, "-i", f"bench-probe-{attempt}",
                            "-q", "1", "-t", "bench/probe", "-m", '{"seq":0}'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
            if self.wait_count("probe", 1, timeout=0.5):
                return self
        raise RuntimeError("mosquitto_sub never received its probe message")

    def _read(self) -> None:
        for raw in self.process.stdout:
            try:
                stamp, topic, payload = raw.decode(errors="replace").split(" ", 2)
                tag = topic.rsplit("/", 1)[-1]
                seq = int(self.SEQ.search(payload).group(1))
                when = float(stamp)
            except (ValueError, AttributeError):
                continue
            with self.cond:
                self.arrivals[tag] = self.arrivals.get(tag, 0) + 1
                self.first.setdefault(tag, {}).setdefault(seq, when)
                self.cond.notify_all()

    def received(self, tag: str) -> int:
        with self.cond:
            return len(self.first.get(tag, ()))

    def wait_count(self, tag: str, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.first.get(tag, ())) >= count, timeout)

    def wait_seq(self, tag: str, seq: int, timeout: float) -> Optional[float]:
        with self.cond:
            ok = self.cond.wait_for(lambda: seq in self.first.get(tag, {}), timeout)
            return self.first[tag][seq] if ok else None

    def summary(self, tag: str, expected: int) -> Dict[str, object]:
        with self.cond:
            got = self.first.get(tag, {})
            return {"expected": expected, "received": len(got),
                    "duplicates": self.arrivals.get(tag, 0) - len(got),
                    "last_arrival_epoch": max(got.values()) if got else None}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self in _live:
            _live.remove(self)


class Removals:
    """Counts files deleted or moved out of DIR/new (inotify), and when the count
    reached the target: the moment new/ became empty of the files we put there."""

    def __init__(self, new_dir: Path):
        self.inotify = INotify()
        self.inotify.add_watch(str(new_dir), flags.DELETE | flags.MOVED_FROM)
        self.count = 0
        self.target = None
        self.done_at: Optional[float] = None
        self.cond = threading.Condition()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def expect(self, target: int) -> None:
        with self.cond:
            self.count, self.target, self.done_at = 0, target, None

    def _run(self) -> None:
        while self.running:
            events = self.inotify.read(timeout=200)
            if not events:
                continue
            now = time.monotonic()
            with self.cond:
                self.count += sum(1 for e in events if e.name)
                if self.target is not None and self.done_at is None and \
                        self.count >= self.target:
                    self.done_at = now
                    self.cond.notify_all()

    def wait(self, timeout: float) -> Optional[float]:
        with self.cond:
            self.cond.wait_for(lambda: self.done_at is not None, timeout)
            return self.done_at

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.inotify.close()


# -- the bench ----------------------------------------------------------------------------
def message(tag: str, seq: int) -> bytes:
    return json.dumps({"topic": f"bench/{tag}", "qos": 1,
                       "payload": {"seq": seq, "device": "bench", "temperature": 21.5,
                                   "data": PAD}}).encode()


def prepare(directory: Path, tag: str, count: int, start: int = 1) -> List[str]:
    """Write COUNT message files into DIR/tmp; return their names (not yet in new/)."""
    names = []
    for seq in range(start, start + count):
        name = f"{tag}-{seq:06d}.json"
        with open(directory / "tmp" / name, "wb") as f:
            f.write(message(tag, seq))
        names.append(name)
    return names


def move_in(directory: Path, names: List[str]) -> None:
    tmp, new = str(directory / "tmp") + "/", str(directory / "new") + "/"
    rename = os.rename
    for name in names:
        rename(tmp + name, new + name)


def action_dir(root: Path, label: str) -> Path:
    directory = root / label
    for sub in ("tmp", "new", "failed"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    return directory


def pct(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]  # nearest rank


class Bench:
    def __init__(self, args):
        self.args = args
        self.n = args.count
        self.work = Path(tempfile.mkdtemp(prefix="chariotd-bench-"))
        self.raw: Dict[str, Dict[str, object]] = {"chariotd": {}, "baseline": {}}
        self.tags = 0

    # setup ------------------------------------------------------------------------------
    def setup(self) -> None:
        pki_dir = self.work / "pki"
        ca = pki.CA.load_or_create(pki_dir)
        self.cafile = ca.cert_path
        server_crt, server_key = ca.issue_server(pki_dir)
        files = {}
        for cn in (SERVICE_USER, "bench-device"):
            cert, key = ca.issue_client(cn)
            (pki_dir / f"{cn}.crt").write_bytes(cert)
            (pki_dir / f"{cn}.key").write_bytes(key)
            (pki_dir / f"{cn}.key").chmod(0o600)
            files[cn] = (cert, key)
        self.device_crt, self.device_key = pki_dir / "bench-device.crt", \
            pki_dir / "bench-device.key"
        options = {}
        # The subscriber's session must survive the broker restart of (b).
        if "persistence" in inspect.signature(sim_mosquitto.render_config).parameters:
            options["persistence"] = True
        else:
            options["extra"] = (f"persistence true\n"
                                f"persistence_location {self.work / 'broker'}/\n")
        self.broker = Mosquitto(self.work / "broker", self.cafile, server_crt, server_key,
                                acl=OPEN_ACL, **options)
        _live.append(self.broker)
        self.broker.start()
        self.certstore = self.work / "certstore"
        pki.write_certstore(self.certstore, self.broker.endpoint, *files["bench-device"])
        self.sub = Subscriber(self.broker, self.cafile, pki_dir / f"{SERVICE_USER}.crt",
                              pki_dir / f"{SERVICE_USER}.key").start()

    def tag(self, impl: str, what: str) -> str:
        self.tags += 1
        return f"{what}{self.tags}{impl[0]}"

    def spawn(self, impl: str, directory: Path) -> Proc:
        log = self.work / f"{impl}.log"
        if impl == "chariotd":
            exe = Path(sys.executable).parent / "chariotd"
            argv = [str(exe if exe.exists() else shutil.which("chariotd")),
                    "--clientid=bench-chariotd", f"--cacert={self.cafile}",
                    f"--certstore={self.certstore}", f"--messages={directory}",
                    f"--default-message-concurrency={INFLIGHT}"]
        else:
            argv = [sys.executable, str(BENCH / "baseline.py"), "--host", self.broker.host,
                    "--port", str(self.broker.port), "--cafile", str(self.cafile),
                    "--cert", str(self.device_crt), "--key", str(self.device_key),
                    "--clientid", "bench-baseline", "--dir", str(directory),
                    "--inflight", str(INFLIGHT)]
        return Proc(impl, argv, log).start()

    def record(self, impl: str, key: str, value) -> None:
        self.raw[impl].setdefault(key, []).append(value)

    def note(self, text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    def finish(self, impl, tag, removals, t_from, extra, count=None) -> Dict[str, object]:
        count = count or self.n
        done = removals.wait(self.args.timeout)
        got = self.sub.wait_count(tag, count, timeout=30)
        result = dict(extra, **self.sub.summary(tag, count))
        result["all_received"] = bool(got)
        if done is None:
            result["error"] = f"new/ not empty after {self.args.timeout} s " \
                              f"({removals.count} of {count} removed)"
            return result
        result["seconds"] = done - t_from
        result["files_per_s"] = count / (done - t_from)
        return result

    # (f) and idle (e) -------------------------------------------------------------------
    def startup(self, impl: str) -> None:
        for i in range(self.args.starts):
            directory = action_dir(self.work, f"start-{impl}-{i}")
            proc = self.spawn(impl, directory)
            try:
                connected = proc.wait_connected(timeout=30)
                if connected is None:
                    self.record(impl, "startup", {"error": proc.tail()})
                    continue
                time.sleep(2.0)
                pss = tree_pss_kb(proc.pid)
                self.record(impl, "startup", {"seconds": connected - proc.spawned_at,
                                              "pss_idle_kb": pss["total_kb"],
                                              "pss_processes": pss["processes"]})
            finally:
                proc.stop()
        s = [r["seconds"] for r in self.raw[impl]["startup"] if "seconds" in r]
        self.note(f"{impl}: start -> connected {[round(x, 3) for x in s]}")

    # (a) --------------------------------------------------------------------------------
    def backlog(self, impl: str) -> None:
        directory = action_dir(self.work, f"a-{impl}-{self.tags}")
        tag = self.tag(impl, "a")
        move_in(directory, prepare(directory, tag, self.n))
        removals = Removals(directory / "new")
        removals.expect(self.n)
        proc = self.spawn(impl, directory)
        try:
            result = self.finish(impl, tag, removals, proc.spawned_at, {})
            connected = proc.wait_connected(timeout=0.1)
            if connected is not None and "seconds" in result:
                result["connect_s"] = connected - proc.spawned_at
                result["files_per_s_from_connected"] = \
                    self.n / (result["seconds"] - result["connect_s"])
            result["pss_after_kb"] = tree_pss_kb(proc.pid)["total_kb"]
            if not proc.alive():
                result["error"] = f"exited: {proc.tail()}"
        finally:
            proc.stop()
            removals.close()
        self.record(impl, "backlog", result)
        self.note(f"{impl}: (a) backlog {fmt_rate(result)}")

    # (b) --------------------------------------------------------------------------------
    def outage(self, impl: str) -> None:
        directory = action_dir(self.work, f"b-{impl}-{self.tags}")
        tag = self.tag(impl, "b")
        names = prepare(directory, tag, self.n)
        removals = Removals(directory / "new")
        removals.expect(self.n)
        self.broker.stop()
        proc = self.spawn(impl, directory)
        try:
            time.sleep(0.5)         # it has tried and failed to connect
            move_in(directory, names)
            time.sleep(1.0)         # ...and has seen the files arrive
            self.broker.start()
            returned = time.monotonic()
            result = self.finish(impl, tag, removals, returned, {})
            connected = proc.wait_connected(after=returned, timeout=0.1)
            if connected is not None and "seconds" in result:
                result["reconnect_s"] = connected - returned
                result["files_per_s_from_reconnect"] = \
                    self.n / (result["seconds"] - result["reconnect_s"])
            if not proc.alive():
                result["error"] = f"exited: {proc.tail()}"
        finally:
            proc.stop()
            removals.close()
            if not self.broker.running():
                self.broker.start()
        self.record(impl, "outage", result)
        self.note(f"{impl}: (b) outage {fmt_rate(result)} "
                  f"(reconnect after {result.get('reconnect_s', float('nan')):.2f} s)")

    # (c), (d), (e) after bursts, (g) ------------------------------------------------------
    def live(self, impls) -> None:
        """Both publishers run side by side (each with its own directory, both idle but
        one), and their bursts alternate, in ABBA order, so a slow spell of the machine
        does not fall on one of them only."""
        running = {}
        try:
            for impl in impls:
                directory = action_dir(self.work, f"c-{impl}-{self.tags}")
                running[impl] = (directory, Removals(directory / "new"),
                                 self.spawn(impl, directory))
            for impl, (_, _, proc) in running.items():
                if proc.wait_connected(timeout=30) is None:
                    self.record(impl, "live", {"error": proc.tail()})
                    return
            time.sleep(1.0)
            for rep in range(self.args.reps):
                for impl in (impls if rep % 2 == 0 else tuple(reversed(impls))):
                    self.burst(impl, *running[impl])
            for impl, (directory, _, proc) in running.items():
                self.latency(impl, proc, directory)
            time.sleep(1.0)
            for impl, (_, _, proc) in running.items():
                pss = tree_pss_kb(proc.pid)
                self.record(impl, "pss_after_bursts", {"total_kb": pss["total_kb"],
                                                       "processes": pss["processes"]})
            time.sleep(2.0)
            before = {impl: tree_cpu(proc.pid) for impl, (_, _, proc) in running.items()}
            time.sleep(self.args.idle)  # both idle at once: each one's own threads counted
            for impl, (_, _, proc) in running.items():
                after = tree_cpu(proc.pid)
                self.record(impl, "idle_cpu", {
                    "seconds": self.args.idle,
                    "cpu_ms": (after["ns"] - before[impl]["ns"]) / 1e6,
                    "cpu_ms_from_ticks": (after["ticks"] - before[impl]["ticks"]) * 1000
                    / CLK_TCK,
                    "context_switches": after["switches"] - before[impl]["switches"]})
                if not proc.alive():
                    self.record(impl, "live", {"error": f"exited: {proc.tail()}"})
        finally:
            for _, removals, proc in running.values():
                proc.stop()
                removals.close()

    def burst(self, impl: str, directory: Path, removals: "Removals", proc: Proc) -> None:
        tag = self.tag(impl, "c")
        names = prepare(directory, tag, self.n)
        removals.expect(self.n)
        started = time.monotonic()
        move_in(directory, names)
        moved = time.monotonic() - started
        result = self.finish(impl, tag, removals, started, {"move_s": moved})
        self.record(impl, "live", result)
        self.note(f"{impl}: (c) live {fmt_rate(result)}")
        time.sleep(0.5)

    def latency(self, impl: str, proc: Proc, directory: Path) -> None:
        tag = self.tag(impl, "d")
        warmup, count = 10, self.args.latency_count
        latencies, lost = [], 0
        for seq in range(1, warmup + count + 1):
            name = prepare(directory, tag, 1, start=seq)[0]
            target = str(directory / "new" / name)
            sent = time.time()
            os.rename(str(directory / "tmp" / name), target)
            arrived = self.sub.wait_seq(tag, seq, timeout=10)
            deadline = time.monotonic() + 10
            while os.path.exists(target) and time.monotonic() < deadline:
                time.sleep(0.0002)
            if arrived is None:
                lost += 1
            elif seq > warmup:
                latencies.append((arrived - sent) * 1000)
        result = {"count": len(latencies), "lost": lost, "warmup": warmup}
        if latencies:
            result.update(p50_ms=pct(latencies, 50), p99_ms=pct(latencies, 99),
                          mean_ms=statistics.mean(latencies), max_ms=max(latencies),
                          min_ms=min(latencies))
        self.record(impl, "latency", result)
        self.note(f"{impl}: (d) latency p50 {result.get('p50_ms', float('nan')):.3f} ms "
                  f"p99 {result.get('p99_ms', float('nan')):.3f} ms")

    def run(self) -> None:
        impls = ("chariotd", "baseline")
        self.note(f"workdir {self.work}; broker {self.broker.endpoint}; "
                  f"{self.n} files, {self.args.reps} reps")
        for impl in impls:
            self.startup(impl)
        for rep in range(self.args.reps):  # ABBA: neither always goes first
            for impl in (impls if rep % 2 == 0 else tuple(reversed(impls))):
                self.backlog(impl)
        for rep in range(self.args.reps):
            for impl in (impls if rep % 2 == 0 else tuple(reversed(impls))):
                self.outage(impl)
        self.live(impls)

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


# -- report -------------------------------------------------------------------------------
def fmt_rate(result: Dict[str, object]) -> str:
    if "files_per_s" not in result:
        return f"FAILED: {result.get('error', '?')}"
    text = f"{result['files_per_s']:.0f} files/s over {result['seconds']:.3f} s"
    if not result.get("all_received"):
        text += f" (subscriber got only {result['received']})"
    return text


def median_of(samples, key):
    values = [s[key] for s in samples or () if isinstance(s, dict) and key in s]
    return statistics.median(values) if values else None


def summarize(raw: Dict[str, Dict[str, object]], n: int, idle: float):
    """Rows: (metric, unit, better, chariotd, baseline)."""
    rows = []

    def add(metric, unit, better, getter):
        rows.append({"metric": metric, "unit": unit, "better": better,
                     "chariotd": getter(raw["chariotd"]), "baseline": getter(raw["baseline"])})

    add(f"(a) backlog of {n} at start, from spawn", "files/s", "higher",
        lambda r: median_of(r.get("backlog"), "files_per_s"))
    add("(a) same, from connected", "files/s", "higher",
        lambda r: median_of(r.get("backlog"), "files_per_s_from_connected"))
    add(f"(b) backlog of {n} after outage, from broker return", "files/s", "higher",
        lambda r: median_of(r.get("outage"), "files_per_s"))
    add("(b) same, from reconnect", "files/s", "higher",
        lambda r: median_of(r.get("outage"), "files_per_s_from_reconnect"))
    add("(b) broker return -> reconnected", "s", "lower",
        lambda r: median_of(r.get("outage"), "reconnect_s"))
    add(f"(c) live drop of {n}", "files/s", "higher",
        lambda r: median_of(r.get("live"), "files_per_s"))
    add("(d) latency p50", "ms", "lower", lambda r: median_of(r.get("latency"), "p50_ms"))
    add("(d) latency p99", "ms", "lower", lambda r: median_of(r.get("latency"), "p99_ms"))
    add("(e) tree PSS idle", "MB", "lower",
        lambda r: _mb(median_of(r.get("startup"), "pss_idle_kb")))
    add("(e) tree PSS after backlog drain (max)", "MB", "lower",
        lambda r: _mb(max((s["pss_after_kb"] for s in r.get("backlog", ())
                           if "pss_after_kb" in s), default=None)))
    add("(e) tree PSS after live bursts + latency", "MB", "lower",
        lambda r: _mb(median_of(r.get("pss_after_bursts"), "total_kb")))
    add("(f) start -> connected (median)", "s", "lower",
        lambda r: median_of(r.get("startup"), "seconds"))
    add("(f) start -> connected (max)", "s", "lower",
        lambda r: max((s["seconds"] for s in r.get("startup", ()) if "seconds" in s),
                      default=None))
    add(f"(g) idle CPU over {idle:g} s", "ms", "lower",
        lambda r: median_of(r.get("idle_cpu"), "cpu_ms"))
    add(f"(g) idle context switches over {idle:g} s", "count", "lower",
        lambda r: median_of(r.get("idle_cpu"), "context_switches"))

    def delivered(r):
        runs = [s for key in ("backlog", "outage", "live") for s in r.get(key, ())
                if isinstance(s, dict) and "expected" in s]
        lost = sum(s["expected"] - s["received"] for s in runs)
        lost += sum(s.get("lost", 0) for s in r.get("latency", ()))
        return lost
    add("messages missing at subscriber", "count", "lower", delivered)
    add("duplicates at subscriber", "count", "lower",
        lambda r: sum(s.get("duplicates", 0) for key in ("backlog", "outage", "live")
                      for s in r.get(key, ()) if isinstance(s, dict)))
    for row in rows:
        c, b = row["chariotd"], row["baseline"]
        row["ratio"] = (c / b) if isinstance(c, (int, float)) and isinstance(
            b, (int, float)) and b else None
    return rows


def _mb(kb):
    return None if kb is None else kb / 1024


def render(rows) -> str:
    def cell(value, unit):
        if value is None:
            return "-"
        if unit == "files/s":
            return f"{value:,.0f}"
        if unit in ("count",):
            return f"{value:g}"
        if unit == "ms" and value >= 100:
            return f"{value:,.0f}"
        return f"{value:.3f}" if unit in ("ms", "s") else f"{value:.1f}"

    header = ("metric", "chariotd", "baseline", "ratio")
    body = [(f"{r['metric']} [{r['unit']}]", cell(r["chariotd"], r["unit"]),
             cell(r["baseline"], r["unit"]),
             "-" if r["ratio"] is None else f"{r['ratio']:.2f}x") for r in rows]
    return markdown_table(header, body)


def markdown_table(header, body) -> str:
    """A markdown table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for line in body:
        lines.append("| " + line[0].ljust(widths[0]) + " | " +
                     " | ".join(c.rjust(w) for c, w in zip(line[1:], widths[1:])) + " |")
    return "\n".join(lines)


def environment() -> Dict[str, object]:
    def run(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10,
                                  cwd=BENCH).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), None)
    except OSError:
        pass
    import paho.mqtt
    return {"python": platform.python_version(), "paho_mqtt": paho.mqtt.__version__,
            "mosquitto": (run([sim_mosquitto.mosquitto_binary(), "-h"]) or "").split("\n")[0],
            "cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "git_commit": run(["git", "rev-parse", "HEAD"]),
            "git_dirty": bool(run(["git", "status", "--porcelain", "--", "../chariotd"])),
            "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="500 files, 1 repetition, 10 s idle, 3 starts")
    parser.add_argument("--count", type=int, help="files per drain (default 2000)")
    parser.add_argument("--reps", type=int, help="repetitions of (a), (b), (c) (default 5)")
    parser.add_argument("--idle", type=float, help="idle CPU window in seconds (default 60)")
    parser.add_argument("--starts", type=int, help="start-up samples (default 5)")
    parser.add_argument("--latency-count", type=int, default=300,
                        help="messages timed one at a time in (d) (default 300)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="give up on a drain after this many seconds")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()
    args.count = args.count or (500 if args.quick else 2000)
    args.reps = args.reps or (1 if args.quick else 5)
    args.idle = args.idle or (10.0 if args.quick else 60.0)
    args.starts = args.starts or (3 if args.quick else 5)
    args.latency_count = max(200, args.latency_count)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    compile_chariotd()
    bench = Bench(args)
    try:
        bench.setup()
        bench.run()
    finally:
        stop_all()
        bench.close()

    rows = summarize(bench.raw, args.count, args.idle)
    table = render(rows)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {"count": args.count, "reps": args.reps, "idle_s": args.idle,
                     "starts": args.starts, "latency_count": args.latency_count,
                     "inflight": INFLIGHT, "file_bytes": len(message("x1c", 1))},
        "environment": environment(),
        "table": rows, "raw": bench.raw}, indent=2, default=str) + "\n")
    print(f"\nwritten to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
