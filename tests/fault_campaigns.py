"""Fault campaigns against the real chariotd tree (issue 8): each function injects one
kind of fault, checks the invariants of DESIGN.md section 4 itself (raising
AssertionError with the evidence), and returns its counts.

The integration tests in tests/integration/test_faults_*.py run them with small
counts; bench/reliability.py runs them with larger ones and writes the table in
docs/reliability.md. Every campaign starts its own broker or simulator, and kills
every process group it started in a `finally`.
"""

from __future__ import annotations

import json
import os
import random
import re
import selectors
import signal
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from support import Daemon, Subscriber, process_group_members, wait_until

# Temp names the daemon makes while writing a file crash-safely (fsutil, certstore).
TEMP_NAME = re.compile(r"^\.(.+)\.tmp-\d+$|^\.adding-")


@dataclass
class Tally:
    """What one campaign did and saw; the columns of docs/reliability.md."""
    name: str
    faults: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    duplicates: int = 0
    lost: int = 0
    outfiles_checked: int = 0
    certificates_checked: int = 0
    requests_handled: int = 0
    seconds: float = 0.0
    notes: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, object]:
        return dict(self.__dict__)


# -- processes ----------------------------------------------------------------------------

def kill_tree(daemon: Daemon) -> None:
    """SIGKILL the whole tree at once (its process group), as a power cut would."""
    try:
        os.killpg(daemon.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    daemon.process.wait(10)


def start_daemon(args: List[str], workdir: Path, env: Optional[dict] = None) -> Daemon:
    return Daemon([str(a) for a in args], workdir, env=env).start()


def descendants(pid: int) -> List[int]:
    from support import children_of
    found, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def role_pid(daemon: Daemon, title: str) -> Optional[int]:
    from support import cmdline
    for pid in descendants(daemon.pid):
        if cmdline(pid) == title:
            return pid
    return None


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


# -- files -----------------------------------------------------------------------------

def files_in(path: Path) -> List[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def temp_names(directory: Path) -> List[str]:
    return [name for name in files_in(directory) if TEMP_NAME.match(name)]


def check_certstore(store: Path) -> int:
    """Every certificate directory complete, its key 0600 and matching its certificate,
    `preferred` (when present) naming one of them. Returns the number checked."""
    from chariotd.provisioning.keys import certificate_fits_key
    from chariotd.sim import pki

    checked = 0
    ids = []
    for entry in sorted(store.iterdir()):
        if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
            continue
        cert = entry / f"{entry.name}-certificate.pem.crt"
        key = entry / f"{entry.name}-private.pem.key"
        assert sorted(p.name for p in entry.iterdir()) == sorted([cert.name, key.name]), \
            f"certificate directory {entry} is not exactly a certificate and its key: " \
            f"{files_in(entry)}"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, f"{key} is not 0600"
        assert certificate_fits_key(cert.read_text(), key.read_text()), \
            f"{entry.name}: the key does not fit the certificate"
        assert pki.certificate_id(cert.read_bytes()) == entry.name
        ids.append(entry.name)
        checked += 1
    preferred = store / "preferred"
    if os.path.lexists(preferred):
        assert os.readlink(preferred) in ids, f"preferred -> {os.readlink(preferred)}, not in {ids}"
    return checked


# -- a loopback TCP proxy that can go silent -----------------------------------------------

class SilentProxy:
    """127.0.0.1:PORT forwarding to UPSTREAM. `stall()` makes every connection open
    now go silent (kept open, nothing forwarded either way), the way a dead NAT
    mapping or a pulled cable looks to the device; connections made afterwards
    forward normally."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.peers: Dict[socket.socket, socket.socket] = {}
        self.stalled: set = set()
        self.lock = threading.Lock()
        self.accepted = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stall(self) -> None:
        with self.lock:
            for sock in list(self.peers):
                self.stalled.add(sock)
                try:
                    self.selector.unregister(sock)
                except (KeyError, ValueError):
                    pass

    def _close_pair(self, sock) -> None:
        other = self.peers.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            self.peers.pop(s, None)
            try:
                self.selector.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()

    def _run(self) -> None:
        while not self.stopping:
            for key, _ in self.selector.select(0.1):
                with self.lock:
                    if key.data is None:
                        client, _ = self.listener.accept()
                        try:
                            upstream = socket.create_connection(self.upstream, timeout=2)
                        except OSError:
                            client.close()
                            continue
                        self.accepted += 1
                        self.peers[client], self.peers[upstream] = upstream, client
                        for s in (client, upstream):
                            s.setblocking(True)
                            self.selector.register(s, selectors.EVENT_READ, "peer")
                        continue
                    sock = key.fileobj
                    if sock in self.stalled or sock not in self.peers:
                        continue
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        self._close_pair(sock)
                        continue
                    try:
                        self.peers[sock].sendall(data)
                    except OSError:
                        self._close_pair(sock)

    def close(self) -> None:
        self.stopping = True
        self.thread.join(5)
        with self.lock:
            for sock in list(self.peers):
                self._close_pair(sock)
            self.listener.close()
            self.selector.close()


# -- message campaigns --------------------------------------------------------------------

def message_file(index: int) -> str:
    """Message INDEX: its topic names it too, so the broker's log shows which it got."""
    return json.dumps({"topic": f"t/drain/{index}", "payload": str(index)})


def fill_backlog(mqtt_dir: Path, count: int, start: int = 0, prefix: str = "m") -> List[str]:
    for sub in ("tmp", "new", "failed"):
        (mqtt_dir / sub).mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(start, start + count):
        name = f"{prefix}{index:06d}"
        tmp = mqtt_dir / "tmp" / name
        tmp.write_text(message_file(index))
        os.rename(tmp, mqtt_dir / "new" / name)
        names.append(name)
    return names


def persistent_broker(test_pki, workdir: Path):
    """A broker that keeps a subscriber's session across a SIGKILL (saved once with
    SIGUSR1 right after the subscription), with no outgoing in-flight limit, and a
    debug log naming every PUBLISH it received and every PUBACK it sent."""
    from chariotd.sim.mosquitto import OPEN_ACL, Mosquitto
    return Mosquitto(workdir, test_pki.cafile, test_pki.server_cert, test_pki.server_key,
                     acl=OPEN_ACL, persistence=True,
                     extra="max_inflight_messages 0\nautosave_interval 0\nlog_type debug\n"
                     ).start()


def save_sessions(broker) -> None:
    db = broker.workdir / "mosquitto.db"
    before = db.stat().st_mtime_ns if db.exists() else None
    broker.process.send_signal(signal.SIGUSR1)
    wait_until(lambda: db.exists() and db.stat().st_mtime_ns != before, timeout=5,
               message="mosquitto saved its sessions")


def watching_subscriber(test_pki, broker, topic: str) -> Subscriber:
    sub = Subscriber(broker.host, broker.port, test_pki.cafile, test_pki.service_cert,
                     test_pki.service_key, topics=(topic,),
                     session=f"faults-{os.getpid()}-{time.monotonic_ns()}")
    save_sessions(broker)
    return sub


def deliveries(sub: Subscriber) -> Dict[int, int]:
    """How many times the subscriber got each message index (the payload)."""
    seen: Dict[int, int] = {}
    for message in sub.received():
        index = int(message.payload)
        seen[index] = seen.get(index, 0) + 1
    return seen


BROKER_RUN = re.compile(r"mosquitto version \S+ starting")
RECEIVED = re.compile(r"Received PUBLISH from (\S+) \(d\d, q1, r\d, m(\d+), 't/drain/(\d+)'")
PUBACK = re.compile(r"Sending PUBACK to (\S+) \(m(\d+), rc0\)")


def acknowledged_by_broker(log: str, client_id: str = "dev1") -> List[set]:
    """Per broker run (the log split at each start), the message indices the broker
    received from CLIENT_ID and acknowledged with a PUBACK."""
    runs = []
    for text in BROKER_RUN.split(log)[1:]:
        pending: Dict[str, int] = {}
        acked = set()
        for line in text.splitlines():
            received = RECEIVED.search(line)
            if received and received.group(1) == client_id:
                pending[received.group(2)] = int(received.group(3))
                continue
            puback = PUBACK.search(line)
            if puback and puback.group(1) == client_id and puback.group(2) in pending:
                acked.add(pending.pop(puback.group(2)))
        runs.append(acked)
    return runs


def drain_setup(test_pki, broker, workdir: Path, backlog: int, window: int):
    """A device certstore for BROKER, a subscriber on the drain's topics and BACKLOG
    message files waiting in WORKDIR/mqtt: (subscriber, messages dir, chariotd args)."""
    from chariotd.sim import pki

    cert, key = test_pki.ca.issue_client("dev1")
    certstore = workdir / "certstore"
    pki.write_certstore(certstore, broker.endpoint, cert, key)
    sub = watching_subscriber(test_pki, broker, "t/drain/#")
    mqtt_dir = workdir / "mqtt"
    fill_backlog(mqtt_dir, backlog)
    args = ["--clientid=dev1", f"--cacert={test_pki.cafile}", f"--certstore={certstore}",
            f"--messages={mqtt_dir}", f"--default-message-concurrency={window}"]
    return sub, mqtt_dir, args


def broker_kill_drain(test_pki, workdir: Path, messages: int = 5000, kills: int = 3,
                      window: int = 10, seed: int = 0) -> Tally:
    """SIGKILL the broker `kills` times during a drain of MESSAGES files and start it
    again at once; the tree runs under a restarting supervisor (support.Supervised)."""
    from support import Supervised

    tally = Tally("broker SIGKILL + restart during a drain")
    rng = random.Random(seed)
    began = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    broker = persistent_broker(test_pki, workdir / "broker")
    tree = sub = None
    try:
        sub, mqtt_dir, args = drain_setup(test_pki, broker, workdir, messages, window)
        env = {"CHARIOTD_BACKOFF_BASE": "0.1"}
        tree = Supervised(lambda: start_daemon(args, workdir, env))
        for number in range(kills):
            threshold = messages * (number + 1) // (kills + 1) + rng.randrange(messages // 20)
            # Progress is what left new/: the subscriber may never see what a killed
            # broker had acknowledged.
            wait_until(lambda: messages - len(files_in(mqtt_dir / "new")) >= threshold,
                       timeout=60, message=lambda: f"{threshold} messages out before kill "
                       f"{number + 1}\n{tree.log()[-3000:]}")
            broker.kill()
            tally.faults += 1
            time.sleep(rng.uniform(0.0, 0.5))
            broker.start()
        wait_until(lambda: files_in(mqtt_dir / "new") == [], timeout=120,
                   message=lambda: f"new/ empty; {len(files_in(mqtt_dir / 'new'))} left\n"
                   + tree.log()[-3000:])
        everything = set(range(messages))
        runs = []

        def all_accounted() -> bool:
            # Delivered, or acknowledged by a broker run that was then SIGKILLed: a
            # broker killed right after its PUBACK may not have passed the message on
            # (its queue to a lagging subscriber dies with it); that is not ours.
            runs[:] = acknowledged_by_broker(broker.log())
            killed = set().union(*runs[:-1]) if len(runs) > 1 else set()
            return everything <= set(deliveries(sub)) | killed

        wait_until(all_accounted, timeout=30, message=lambda: "every message delivered or "
                   "acknowledged by a killed broker; missing: "
                   f"{sorted(everything - set(deliveries(sub)))[:50]}")
        time.sleep(0.3)  # late duplicates, if any, are counted too
        seen = deliveries(sub)
        acked = set().union(*runs)
        tally.messages_sent = messages
        tally.messages_received = sum(seen.values())
        tally.duplicates = tally.messages_received - len(seen)
        tally.lost = len(everything - set(seen) - acked)  # never acknowledged: ours
        dropped_by_broker = everything - set(seen)
        assert tally.lost == 0
        assert acked >= everything, f"never acknowledged: {sorted(everything - acked)[:50]}"
        assert files_in(mqtt_dir / "new") == [] and files_in(mqtt_dir / "failed") == []
        assert tally.duplicates <= kills * window, \
            f"{tally.duplicates} duplicates for {kills} kills with a window of {window}"
        if dropped_by_broker:
            tally.notes.append(f"{len(dropped_by_broker)} acknowledged by the broker, which "
                               "was killed before passing them on")
        tally.notes.append(f"{len(tree.exits)} tree restarts")
    finally:
        if tree is not None:
            tree.stop()
            for run in tree.runs:
                run.stop()
        if sub is not None:
            sub.close()
        broker.stop()
    tally.seconds = time.monotonic() - began
    return tally


# -- a link that goes silent -----------------------------------------------------------------

def misc_interval(keepalive: int) -> float:
    """How often the link runs paho's keep-alive housekeeping (broker_link.main)."""
    return max(0.5, min(5.0, keepalive / 4))


def silence_bound(keepalive: int) -> float:
    """Seconds from the last byte received to the link closing a silent connection:
    paho sends PINGREQ once `keepalive` seconds pass without a byte in, and closes when
    another `keepalive` passes without PINGRESP; each check runs every misc_interval."""
    return 2 * keepalive + 2 * misc_interval(keepalive)


def _count(daemon: Daemon, text: str) -> int:
    return daemon.log().count(text)


def silent_link(test_pki, workdir: Path, stalls: int = 1, keepalive: int = 2,
                how: str = "proxy") -> Tally:
    """The connection goes silent without closing, STALLS times: HOW is `proxy` (a
    loopback proxy stops forwarding, new connections work) or `sigstop` (the broker is
    SIGSTOPped, then SIGCONTed once the link noticed). A message dropped into new/
    while the link is silent must still arrive. Notes say how long detection and the
    reconnect took (seconds from the moment of silence)."""
    from chariotd.sim import pki
    from conftest import start_broker

    tally = Tally(f"silent link ({how}), keepalive {keepalive} s")
    began = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    broker = start_broker(test_pki, workdir / "broker")
    proxy = SilentProxy(broker.host, broker.port) if how == "proxy" else None
    sub = daemon = None
    detections, reconnects = [], []
    try:
        cert, key = test_pki.ca.issue_client("dev1")
        certstore = workdir / "certstore"
        pki.write_certstore(certstore, proxy.endpoint if proxy else broker.endpoint, cert, key)
        sub = Subscriber(broker.host, broker.port, test_pki.cafile, test_pki.service_cert,
                         test_pki.service_key, topics=("t/drain/#",))
        mqtt_dir = workdir / "mqtt"
        fill_backlog(mqtt_dir, 0)
        daemon = start_daemon(["--clientid=dev1", f"--cacert={test_pki.cafile}",
                               f"--certstore={certstore}", f"--messages={mqtt_dir}",
                               f"--keepalive={keepalive}"], workdir,
                              {"CHARIOTD_BACKOFF_BASE": "0.1"})
        daemon.wait_connected()
        index = 0
        for _ in range(stalls):
            fill_backlog(mqtt_dir, 1, start=index)  # the link works
            wait_until(lambda: index in deliveries(sub), message=f"message {index}")
            index += 1
            lost, connected = _count(daemon, "connection lost"), _count(daemon, "connected to")
            silent_at = time.monotonic()
            proxy.stall() if proxy else broker.pause()
            tally.faults += 1
            fill_backlog(mqtt_dir, 1, start=index)  # into the void: must come again
            limit = silence_bound(keepalive) + 2.0
            wait_until(lambda: _count(daemon, "connection lost") > lost, timeout=limit,
                       interval=0.01, message=lambda: "the silent link noticed\n" + daemon.log())
            detections.append(time.monotonic() - silent_at)
            if not proxy:
                broker.resume()
            wait_until(lambda: _count(daemon, "connected to") > connected, timeout=15,
                       interval=0.01, message=lambda: "reconnected\n" + daemon.log())
            reconnects.append(time.monotonic() - silent_at)
            wait_until(lambda: index in deliveries(sub), timeout=10,
                       message=f"message {index}, sent into the silent link, again")
            index += 1
        wait_until(lambda: files_in(mqtt_dir / "new") == [], message="new/ empty")
        seen = deliveries(sub)
        tally.messages_sent = index
        tally.messages_received = sum(seen.values())
        tally.duplicates = tally.messages_received - len(seen)
        tally.lost = index - len(seen)
        assert tally.lost == 0
        assert max(detections) <= silence_bound(keepalive) + 1.0, detections
        tally.notes.append(
            f"noticed after {min(detections):.1f}-{max(detections):.1f} s, reconnected after "
            f"{min(reconnects):.1f}-{max(reconnects):.1f} s (bound "
            f"{silence_bound(keepalive):g} s + backoff)")
        tally.detections, tally.reconnects = detections, reconnects
    finally:
        if daemon is not None:
            daemon.stop()
        if sub is not None:
            sub.close()
        if proxy is not None:
            proxy.close()
        broker.stop()
    tally.seconds = time.monotonic() - began
    return tally


# -- a restart storm against a broker that refuses the certificate ------------------------------

ATTEMPT = re.compile(r"link: connecting to ")


def rejected_certificate_storm(test_pki, rogue_pki, workdir: Path, restarts: int = 20,
                               backoff_base: float = 0.05) -> Tally:
    """The device's certificate comes from a CA the broker does not trust: every TLS
    handshake fails. chariotd is restarted RESTARTS times as soon as it exits (no
    supervisor throttling at all). Each run must give up only after its backoff
    (MAX_FAILURES + 1 attempts, at least the minimum connect interval apart) and exit 1;
    the link's file descriptors must not grow from one failed attempt to the next; no
    process, runtime directory or temp file may be left behind."""
    from chariotd.broker_link.main import MAX_FAILURES
    from chariotd.sim import pki
    from conftest import start_broker

    tally = Tally("certificate refused by the broker: restart storm")
    began = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    broker = start_broker(test_pki, workdir / "broker")
    rundir_base = workdir / "rundir-base"
    rundir_base.mkdir()
    fd_samples: List[List[int]] = []
    durations = []
    try:
        cert, key = rogue_pki.ca.issue_client("dev1")
        certstore = workdir / "certstore"
        cert_id = pki.write_certstore(certstore, broker.endpoint, cert, key)
        args = ["--clientid=dev1", f"--cacert={test_pki.cafile}", f"--certstore={certstore}"]
        env = {"CHARIOTD_BACKOFF_BASE": str(backoff_base), "TMPDIR": str(rundir_base)}
        for run in range(restarts):
            started = time.monotonic()
            daemon = start_daemon(args, workdir, env)
            try:
                samples = []
                if run == 0:  # one run watched closely: the link's fds after each failure
                    link = wait_until(lambda: role_pid(daemon, "chariotd: link"),
                                      message="the link process")
                    for failure in range(1, MAX_FAILURES + 1):
                        wait_until(lambda: f"(failure {failure} of" in daemon.log()
                                   or daemon.process.poll() is not None,
                                   message=f"failure {failure}")
                        samples.append(open_fds(link))
                    fd_samples.append(samples)
                status = daemon.wait_exit(30 + 40 * backoff_base)
            finally:
                daemon.stop()
            durations.append(time.monotonic() - started)
            tally.faults += 1
            log = daemon.log()
            attempts = len(ATTEMPT.findall(log))
            assert status == 1, f"run {run} exited {status}\n{log}"
            assert attempts == MAX_FAILURES + 1, f"run {run}: {attempts} attempts\n{log}"
            assert "connection failures in a row; exiting" in log, log
            assert durations[-1] >= MAX_FAILURES * min(1.0, backoff_base), durations[-1]
            assert process_group_members(daemon.pid) == [], "processes left behind"
            assert files_in(rundir_base) == [], f"left in the rundir base: {files_in(rundir_base)}"
            assert files_in(certstore) == sorted([cert_id, "endpoint.txt", "preferred"]), \
                f"certstore now holds {files_in(certstore)}"
        for samples in fd_samples:  # one leaked per attempt would add 4 by the last
            assert samples[-1] <= min(samples[:2]) + 1, \
                f"the link's fds after each failure: {samples}"
        tally.notes.append(
            f"{restarts} runs in {sum(durations):.1f} s ({min(durations):.2f}-"
            f"{max(durations):.2f} s each, {MAX_FAILURES + 1} attempts each); link fds after "
            f"failures 1..{MAX_FAILURES}: {fd_samples[0]}")
        tally.fd_samples = fd_samples
    finally:
        broker.stop()
    tally.seconds = time.monotonic() - began
    return tally


# -- SIGKILL of the whole tree at random moments --------------------------------------------------

def check_rundir_base(base: Path) -> None:
    """After a start, only the running tree's runtime directory may be there."""
    left = files_in(base)
    assert len(left) <= 1, f"runtime directories left behind by killed trees: {left}"


def kill_drain(test_pki, workdir: Path, rounds: int = 20, backlog: int = 1000,
               live: int = 150, window: int = 10, seed: int = 0) -> Tally:
    """ROUNDS times: start the tree, drop LIVE more files into new/ while it runs, and
    SIGKILL the whole process group at a random moment (during start-up, the scan, the
    drain or idle); then start it again, as runit would. Finally every message must
    have reached the subscriber and new/ be empty; duplicates at most two windows per
    kill (the one in flight, and acknowledgements not yet told to the watcher)."""

    tally = Tally("SIGKILL of the tree during drains")
    rng = random.Random(seed)
    began = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    broker = persistent_broker(test_pki, workdir / "broker")
    sub = daemon = None
    rundir_base = workdir / "rundir-base"
    rundir_base.mkdir()
    try:
        sub, mqtt_dir, args = drain_setup(test_pki, broker, workdir, backlog, window)
        total = backlog
        env = {"CHARIOTD_BACKOFF_BASE": "0.05", "TMPDIR": str(rundir_base)}
        for _ in range(rounds):
            daemon = start_daemon(args, workdir, env)
            kill_at = time.monotonic() + rng.uniform(0.2, 1.5)
            time.sleep(rng.uniform(0.0, 0.6))
            fill_backlog(mqtt_dir, live, start=total)  # a writer busy meanwhile
            total += live
            time.sleep(max(0.0, kill_at - time.monotonic()))
            kill_tree(daemon)
            tally.faults += 1
            assert temp_names(mqtt_dir / "new") == [] and files_in(mqtt_dir / "failed") == []
            for name in files_in(mqtt_dir / "new"):  # what is left is whole, as written
                index = int(name[1:])
                assert (mqtt_dir / "new" / name).read_text() == message_file(index)
            daemon.stop()
        daemon = start_daemon(args, workdir, env)
        wait_until(lambda: files_in(mqtt_dir / "new") == [], timeout=60,
                   message=lambda: f"new/ empty\n{daemon.log()[-3000:]}")
        check_rundir_base(rundir_base)
        everything = set(range(total))
        wait_until(lambda: set(deliveries(sub)) >= everything, timeout=30,
                   message=lambda: f"missing {sorted(everything - set(deliveries(sub)))[:50]}")
        time.sleep(0.3)
        seen = deliveries(sub)
        tally.messages_sent = total
        tally.messages_received = sum(seen.values())
        tally.duplicates = tally.messages_received - len(seen)
        tally.lost = len(everything - set(seen))
        tally.requests_handled = total
        assert tally.lost == 0
        assert files_in(mqtt_dir / "failed") == []
        # A SIGKILL can hit a window in flight and, behind it, up to a window the broker
        # acknowledged whose files were not removed yet (the link tells acknowledgements
        # in batches while a backlog drains): both are published again after the restart.
        assert tally.duplicates <= tally.faults * 2 * window, \
            f"{tally.duplicates} duplicates for {tally.faults} kills, window {window}"
    finally:
        if daemon is not None:
            daemon.stop()
        if sub is not None:
            sub.close()
        broker.stop()
    tally.seconds = time.monotonic() - began
    return tally


SERVICE = """module.exports = {{
  key: '{key}',
  outfile: '{outfile}',
  outformat: '{outformat}',
  informat: 'JSON',
  notifycmd: 'echo {key} >> {notified}',
}}
"""


def check_outfiles(out: Path, formats_by_name: Dict[str, str]) -> int:
    """Every outfile present parses in its format. Returns how many were checked."""
    from chariotd import formats
    checked = 0
    for name, outformat in formats_by_name.items():
        path = out / name
        if not path.exists():
            continue
        text = path.read_text()
        try:
            value = formats.get(outformat).parse(text)
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            raise AssertionError(f"{path} is not valid {outformat}: {error}\n{text!r}")
        assert isinstance(value, dict) and value, f"{path}: {value!r}"
        checked += 1
    return checked


def kill_shadow(sim, workdir: Path, rounds: int = 20, seed: int = 0) -> Tally:
    """ROUNDS times: start the tree (services with JSON and SHELL outfiles, --updates),
    let the cloud change desired state and a local writer drop update files, and
    SIGKILL the process group at a random moment; start again. After every kill each
    outfile present must parse; in the end the outfiles hold the last values, every
    update file was reported (at least once) and left new/, and no temp file is left."""
    tally = Tally("SIGKILL of the tree during shadow updates")
    rng = random.Random(seed)
    began = time.monotonic()
    thing = "dev1"
    svcs, out, updates = workdir / "svcs", workdir / "out", workdir / "updates"
    for directory in (svcs, out):
        directory.mkdir(parents=True)
    outformats = {"cloud_json": "JSON", "cloud_shell": "SHELL", "local": "JSON"}
    for key, outformat in outformats.items():
        (svcs / f"{key}.js").write_text(SERVICE.format(
            key=key, outfile=out / key, outformat=outformat, notified=workdir / "notified"))
    rundir_base = workdir / "rundir-base"
    rundir_base.mkdir()
    args = [f"--clientid={thing}", f"--cacert={sim.cafile}",
            f"--certstore={sim.device(thing)}", f"--services={thing}:{svcs}",
            f"--updates={thing}:{updates}"]
    env = {"CHARIOTD_BACKOFF_BASE": "0.05", "CHARIOTD_REQUEST_TIMEOUT": "2",
           "TMPDIR": str(rundir_base)}
    written: Dict[str, str] = {}
    desired: Dict[str, dict] = {}
    daemon = None
    try:
        for number in range(rounds):
            daemon = start_daemon(args, workdir, env)
            kill_at = time.monotonic() + rng.uniform(0.3, 2.0)
            time.sleep(rng.uniform(0.0, 0.8))
            desired = {"cloud_json": {"round": number, "text": f"it's \"{number}\" $(x)"},
                       "cloud_shell": {"round": number, "words": ["a b", f"r{number}"]}}
            sim.set_desired(thing, None, desired)
            tally.messages_sent += 1
            for name, value in ((f"local.{number:04d}", {"n": number}),
                                (f"note{number}", {"r": number})):
                if not (updates / "tmp").is_dir():
                    break  # killed before it made its directories: the writer waits
                text = json.dumps(value)
                (updates / "tmp" / name).write_text(text)
                os.rename(updates / "tmp" / name, updates / "new" / name)
                written[name] = text
            time.sleep(max(0.0, kill_at - time.monotonic()))
            kill_tree(daemon)
            tally.faults += 1
            tally.outfiles_checked += check_outfiles(out, outformats)
            for name in files_in(updates / "new"):  # what waits is whole, as written
                assert (updates / "new" / name).read_text() == written[name]
            assert files_in(updates / "failed") == []
            daemon.stop()
        daemon = start_daemon(args, workdir, env)

        def reported() -> dict:
            return (sim.get_shadow(thing) or {}).get("state", {}).get("reported", {})

        wait_until(lambda: files_in(updates / "new") == [], timeout=30,
                   message=lambda: f"updates/new empty\n{daemon.log()[-3000:]}")
        notes = {name: json.loads(text) for name, text in written.items()
                 if name.startswith("note")}
        last_local = max((n for n in written if n.startswith("local.")), default=None)
        wait_until(lambda: all(reported().get(name) == value for name, value in notes.items())
                   and reported().get("cloud_json") == desired["cloud_json"]
                   and reported().get("cloud_shell") == desired["cloud_shell"], timeout=30,
                   message=lambda: f"every update reported; reported={reported()}\n"
                   f"{daemon.log()[-3000:]}")
        wait_until(lambda: "desired" not in (sim.get_shadow(thing) or {}).get("state", {})
                   or not (sim.get_shadow(thing)["state"]["desired"]), timeout=10,
                   message="desired cleared")
        tally.outfiles_checked += check_outfiles(out, outformats)
        assert json.loads((out / "cloud_json").read_text()) == desired["cloud_json"]
        from chariotd import formats
        assert formats.get("SHELL").parse((out / "cloud_shell").read_text()) == \
            desired["cloud_shell"]
        if last_local is not None:
            assert json.loads((out / "local").read_text()) == json.loads(written[last_local])
        assert files_in(updates / "failed") == []
        assert temp_names(out) == [], f"temp files left beside the outfiles: {files_in(out)}"
        check_rundir_base(rundir_base)
        tally.requests_handled = len(written)
        tally.notes.append(f"{len(written)} update files, {rounds} desired changes")
    finally:
        if daemon is not None:
            daemon.stop()
    tally.seconds = time.monotonic() - began
    return tally


def kill_fleetprov(sim, workdir: Path, rounds: int = 20, seed: int = 0) -> Tally:
    """ROUNDS first boots, each from an empty certstore (CreateKeysAndCertificate and
    CSR in turn, JSON and SHELL outfiles in turn): the tree is SIGKILLed at a random
    moment of provisioning and started again, as runit would, until it has a
    certificate. After every kill each certificate directory is complete with a key
    that fits; in the end there is exactly one, preferred, the outfile holds the
    result, the notify command ran, and no temp name is left."""
    from chariotd import formats

    tally = Tally("SIGKILL of the tree during fleet provisioning")
    rng = random.Random(seed)
    began = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    rundir_base = workdir / "rundir-base"
    rundir_base.mkdir()
    env = {"CHARIOTD_BACKOFF_BASE": "0.01", "CHARIOTD_FLEETPROV_PAUSE": "0.3",
           "TMPDIR": str(rundir_base)}
    expected = {"thing": "sim-0001", "configuration": {"serial": "0001", "greeting": "hello"}}
    daemon = None
    try:
        for number in range(rounds):
            store = workdir / f"certs{number}"
            store.mkdir(mode=0o700)
            (store / "endpoint.txt").write_text(sim.endpoint + "\n")
            outformat = "JSON" if number % 2 == 0 else "SHELL"
            outfile = workdir / f"provisioned{number}"
            notified = workdir / f"notified{number}"
            config = workdir / f"fleetprov{number}.json"
            config.write_text(json.dumps({
                "claimstore": str(sim.claimstore), "template": "chariotd-sim",
                "parameters": {"SerialNumber": "0001"}, "csr": number % 4 >= 2,
                "outfile": str(outfile), "outformat": outformat,
                "notifycmd": f"echo done >> {notified}"}))
            args = ["--clientid=dev-0001", f"--cacert={sim.cafile}", f"--certstore={store}",
                    f"--fleetprov={config}"]
            daemon = start_daemon(args, workdir, env)
            time.sleep(rng.uniform(0.1, 1.2))
            kill_tree(daemon)
            daemon.stop()
            tally.faults += 1
            tally.certificates_checked += check_certstore(store)
            if outfile.exists():
                tally.outfiles_checked += 1
                assert formats.get(outformat).parse(outfile.read_text()) == expected
            for _ in range(5):  # restarted until it has its certificate
                daemon = start_daemon(args, workdir, env)
                status = wait_until(
                    lambda: daemon.process.poll() is not None
                    or "link: connecting to" in daemon.log(), timeout=30,
                    message=lambda: f"provisioned\n{daemon.log()}")
                daemon.stop()
                if status is True or daemon.process.returncode == 0:
                    break
            tally.certificates_checked += check_certstore(store)
            certificates = [p for p in store.iterdir() if p.is_dir() and not p.is_symlink()
                            and not p.name.startswith(".")]
            assert len(certificates) == 1, files_in(store)
            assert os.readlink(store / "preferred") == certificates[0].name
            assert outfile.exists(), f"round {number}: no outfile\n{daemon.log()}"
            assert formats.get(outformat).parse(outfile.read_text()) == expected
            tally.outfiles_checked += 1
            assert notified.exists(), f"round {number}: the notify command never ran"
            assert temp_names(store) == [] and temp_names(workdir) == [], \
                (files_in(store), files_in(workdir))
            assert files_in(rundir_base) == []
        tally.requests_handled = rounds
    finally:
        if daemon is not None:
            daemon.stop()
    tally.seconds = time.monotonic() - began
    return tally
