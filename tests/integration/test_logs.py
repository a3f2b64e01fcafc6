"""Logs of the real tree: one line per event on stderr, `role: message`, no timestamps,
levels with --log-level, `<N>` priorities under journald, and never a secret."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from chariotd.sim import pki
from support import cmdline, wait_until, write_message

LINE = re.compile(r"^(chariotd|link|applier|watch /[^:]+): (?:(warning|error): )?\S")
TIMESTAMP = re.compile(r"\d\d:\d\d:\d\d|\d{4}-\d\d-\d\d")


def secret_fragments(certstore: Path):
    """PEM markers and 24-character pieces of every certificate and key body."""
    fragments = {"-----BEGIN", "-----END", "PRIVATE KEY"}
    for path in certstore.glob("*/*.pem.*"):
        body = "".join(line for line in path.read_text().splitlines()
                       if not line.startswith("-----"))
        fragments.update(body[i:i + 24] for i in range(0, len(body) - 24, 12))
    return fragments


def assert_clean(log: str, certstore: Path):
    lines = log.splitlines()
    assert lines
    for line in lines:
        assert LINE.match(line), f"not `role: message`: {line!r}"
        assert not TIMESTAMP.search(line), f"timestamp in {line!r}"
    leaked = [f for f in secret_fragments(certstore) if f in log]
    assert leaked == [], f"secret material in the log: {leaked[:3]}"


def test_a_full_run_at_debug_level(daemons, base_args, certstore, subscriber, tmp_path):
    mqtt = tmp_path / "mqtt"
    daemon = daemons([*base_args, f"--messages={mqtt}", "--log-level=debug",
                      "--last-will-topic=status/dev1", "--last-will-payload=offline"],
                     tmp_path, env={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    daemon.wait_connected()
    write_message(mqtt, "good", '{"topic": "logs/t", "payload": {"k": 1}}')
    write_message(mqtt, "bad", "{not json")
    subscriber.wait_for(1, topic="logs/t")
    daemon.wait_log(r"bad: .*moved to failed/")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(5) == 0
    log = daemon.log()
    assert_clean(log, certstore)
    assert "chariotd: debug" not in log  # debug lines carry no level word
    assert re.search(r"^chariotd: link exited with status 0$", log, re.M)  # a debug line
    # One line per publish and per acknowledgement, in the watcher and in the link,
    # joined by the request id; the link's name the MQTT mid. Never the payload.
    request = re.search(r"(?m)^watch [^:]+: good: publishing to logs/t, QoS 1 "
                        r"\(request (\d+)\)$", log).group(1)
    assert re.search(rf"(?m)^watch [^:]+: good: acknowledged \(request {request}\)$", log)
    mid = re.search(rf"(?m)^link: published msg0 request {request} to logs/t, QoS 1: "
                    r"mid (\d+)$", log).group(1)
    assert f"link: acknowledged mid {mid} (msg0 request {request})" in log
    assert '"k"' not in log
    # An orderly stop is said at info, not as a lost connection.
    assert re.search(r"(?m)^link: disconnected: stopping$", log)
    assert "connection lost" not in log
    assert re.search(r"^chariotd: warning: cannot notify systemd at ", log, re.M)


def test_a_key_that_does_not_fit_is_reported_without_its_content(daemons, test_pki, broker,
                                                                 tmp_path):
    certstore = tmp_path / "mismatch"
    cert, _ = test_pki.ca.issue_client("dev1")
    pki.write_certstore(certstore, broker.endpoint, cert, pki.key_pem(pki.new_key()))
    daemon = daemons(["--clientid=dev1", f"--cacert={test_pki.cafile}",
                      f"--certstore={certstore}", "--log-level=debug"], tmp_path,
                     env={"CHARIOTD_BACKOFF_BASE": "0.01"})
    assert daemon.wait_exit(20) == 1
    assert "key values mismatch" in daemon.log()
    assert_clean(daemon.log(), certstore)


def test_log_levels(daemons, base_args, tmp_path):
    mqtt = tmp_path / "mqtt"
    quiet = daemons([*base_args, f"--messages={mqtt}", "--log-level=warning"], tmp_path)
    wait_until(lambda: (mqtt / "tmp").is_dir(), message="the action directory")
    write_message(mqtt, "bad", "{not json")
    quiet.wait_log(r"^watch .*: warning: bad: ")
    assert "connected to" not in quiet.log()  # info
    quiet.stop()

    silent = daemons([*base_args, f"--messages={mqtt}", "--log-level=error"], tmp_path)
    write_message(mqtt, "bad2", "{not json")
    wait_until(lambda: "bad2" in os.listdir(mqtt / "failed"), message="bad2 in failed/")
    silent.signal(signal.SIGTERM)
    assert silent.wait_exit(5) == 0
    assert silent.log() == ""


def test_journal_priorities_under_systemd(daemons, base_args, tmp_path):
    mqtt = tmp_path / "mqtt"
    daemon = daemons([*base_args, f"--messages={mqtt}", "--log-level=debug"], tmp_path,
                     env={"JOURNAL_STREAM": "8:12345"})
    daemon.wait_log(r"(?m)^<6>link: connected to")
    write_message(mqtt, "bad", "{not json")
    daemon.wait_log(r"(?m)^<4>watch .*: warning: bad: ")
    link = next(pid for pid in daemon.children() if cmdline(pid) == "chariotd: link")
    os.kill(link, signal.SIGKILL)
    assert daemon.wait_exit(5) == 1
    lines = daemon.log().splitlines()
    for line in lines:
        assert re.match(r"^<[3467]>", line) and LINE.match(line[3:]), line
    assert any(line.startswith("<3>chariotd: error: link (pid ") for line in lines)
    assert any(line.startswith("<7>chariotd: ") for line in lines)  # debug


def test_debug_lines_of_the_applier(daemons, sim, tmp_path):
    """At debug: each shadow request and response (kind, version, token, never the
    state) and each child command started and ended (pid, program, status, time)."""
    svcs, out = tmp_path / "svcs", tmp_path / "out"
    svcs.mkdir()
    out.mkdir()
    (svcs / "led.js").write_text(
        f"module.exports = {{ key: 'led', outfile: '{out / 'led'}', outformat: 'JSON', "
        f"informat: 'JSON', notifycmd: '/bin/true secret-argument' }}\n")
    certstore = sim.device("dev1")
    daemon = daemons(["--clientid=dev1", f"--cacert={sim.cafile}",
                      f"--certstore={certstore}", f"--services=dev1:{svcs}",
                      "--log-level=debug"], tmp_path)
    daemon.wait_log(r"shadow (fetched|created)")
    sim.set_desired("dev1", None, {"led": {"colour": "mauve-payload"}})
    daemon.wait_log(r"(?m)^applier: '/bin/sh' \(pid \d+\) exited with status 0 after "
                    r"\d+\.\d{3} s$")
    daemon.wait_log(r"(?m)^applier: dev1: shadow update accepted \(version \d+, token ")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(5) == 0
    log = daemon.log()
    assert_clean(log, certstore)
    token = re.search(r"(?m)^applier: dev1: shadow get request \(token (\S+)\)$",
                      log).group(1)
    assert re.search(rf"(?m)^applier: dev1: shadow get (accepted|rejected) \(version "
                     rf"\S+, token '{re.escape(token)}'\)$", log)
    assert re.search(r"(?m)^applier: dev1: shadow delta \(version \d+, token ", log)
    assert re.search(r"(?m)^applier: dev1: shadow update request \(token \S+, \d+ local "
                     r"requests\)$", log)
    assert re.search(r"(?m)^link: shadow (get|update) request to \$aws/things/dev1/shadow/"
                     r"(get|update): mid \d+, No error\.$", log)
    assert re.search(r"(?m)^applier: started '/bin/sh' \(pid \d+\)$", log)
    assert "mauve-payload" not in log and "secret-argument" not in log

