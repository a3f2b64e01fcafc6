"""Hostile input against the real tree and chariotd-sim: bad shadow documents published
on the device's own response topics, bad files in every action directory, bad service
definitions. Nothing crashes the tree (the same processes keep running), bad files go
to failed/ with a reason, bad cloud documents are logged and ignored, and afterwards
the tree still does its job."""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

from support import wait_until, write_message

THING = "dev1"
SHADOW = f"$aws/things/{THING}/shadow"
DEEP = b"[" * 100000
DIGITS = b"1" * 5000


def service(svcs: Path, out: Path, key: str, outformat: str, informat: str = "JSON") -> Path:
    svcs.joinpath(f"{key}.js").write_text(textwrap.dedent(f"""\
        module.exports = {{
          key: '{key}', outfile: '{out / key}', outformat: '{outformat}',
          informat: '{informat}', notifycmd: 'true',
        }}
        """))
    return out / key


def children(daemon):
    return sorted(daemon.children())


def read(path: Path):
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def start_device(sim, daemons, tmp_path, *extra):
    svcs, out = tmp_path / "svcs", tmp_path / "out"
    svcs.mkdir()
    out.mkdir()
    outfiles = {"cfg": service(svcs, out, "cfg", "JSON"),
                "sh": service(svcs, out, "sh", "SHELL", "SHELL")}
    args = [f"--clientid={THING}", f"--cacert={sim.cafile}",
            f"--certstore={sim.device(THING)}", f"--services={THING}:{svcs}", *extra]
    daemon = daemons(args, tmp_path)
    daemon.wait_log(r"shadow (fetched|created)", timeout=20)
    return daemon, svcs, outfiles


def still_works(sim, daemon, outfiles, value: int) -> None:
    sim.set_desired(THING, None, {"cfg": {"n": value}, "sh": {"n": value}})
    def arrived():
        config = json.loads(read(outfiles["cfg"]) or "null")
        return (isinstance(config, dict) and config.get("n") == value
                and f"n='{value}'\n" in (read(outfiles["sh"]) or ""))

    wait_until(arrived,
               timeout=15, message=lambda: f"outfiles after the hostile input\n{daemon.log()}")


def test_hostile_shadow_documents_are_ignored(sim, daemons, tmp_path):
    daemon, _, outfiles = start_device(sim, daemons, tmp_path,
                                       "--tunnelmappings=dev1:SSH=22",
                                       "--tunnelproxy=/nonexistent/localproxy")
    before = children(daemon)
    still_works(sim, daemon, outfiles, 1)
    hostile = [b"", b"\xff\xfe\xfd", DEEP, DIGITS, b"null", b"[1, 2]", b'"state"',
               b'{"state": ' + b'{"a":' * 900 + b"1" + b"}" * 901,
               b'{"state": 5, "version": 99}', b'{"state": {"cfg": [1, null]}}',
               b'{"state": {"cfg": "\\ud800"}, "version": "x"}',
               b'{"state": {"sh": {"PATH": "/evil", "x": "$(touch pwned)"}}}',
               b'{"state": {"sh": {"a b": 1}, "cfg": {"k": 1e999}}}',
               json.dumps({"state": {"other": {"x" * 1000: "y" * 100000}}}).encode(),
               b'{"state": {"desired": {"cfg": 1}}, "clientToken": 7, "code": "409"}']
    topics = [f"{SHADOW}/update/delta", f"{SHADOW}/get/accepted", f"{SHADOW}/get/rejected",
              f"{SHADOW}/update/accepted", f"{SHADOW}/update/rejected",
              f"$aws/things/{THING}/tunnels/notify"]
    for topic in topics:
        for payload in hostile:
            sim.publish(topic, payload)
    sim.publish(f"$aws/things/{THING}/tunnels/notify", {
        "clientMode": "destination", "region": "r", "services": ["SSH"] * 10000,
        "clientAccessToken": "hostile-token-4d2c"})
    daemon.wait_log(r"ignored a shadow update/delta message: nested deeper than", timeout=15)
    daemon.wait_log(r"ignored a shadow get/accepted message: not UTF-8", timeout=15)
    daemon.wait_log(r"ignored a shadow update/delta message with a null in an array")
    still_works(sim, daemon, outfiles, 2)
    assert children(daemon) == before, daemon.log()
    assert daemon.process.poll() is None
    assert not Path("/pwned").exists() and "pwned" not in os.listdir(tmp_path)
    assert "hostile-token-4d2c" not in daemon.log()
    assert "crashed" not in daemon.log() and "Traceback" not in daemon.log()


def test_hostile_files_go_to_failed_with_a_reason(sim, daemons, tmp_path):
    mqtt, updates, commands = tmp_path / "mqtt", tmp_path / "updates", tmp_path / "cmd"
    daemon, svcs, outfiles = start_device(
        sim, daemons, tmp_path, f"--messages={mqtt}", f"--updates={THING}:{updates}",
        f"--commands={commands}", "--tunnelmappings=dev1:SSH=22",
        "--tunnelproxy=/nonexistent/localproxy")
    before = children(daemon)
    messages = {
        "deep": b'{"topic": "t", "payload": ' + DEEP + b"}",
        "digits": b'{"topic": "t", "payload": ' + DIGITS + b"}",
        "latin1": b'{"topic": "caf\xe9", "payload": 1}',
        "reserved": b'{"topic": "$aws/things/dev1/shadow/update", "payload": {"state": {}}}',
        "wildcard": b'{"topic": "a/#", "payload": 1}',
        "qosdict": b'{"topic": "t", "payload": 1, "qos": {"a": [1]}}',
        "surrogate": b'{"topic": "t\\ud800", "payload": 1}',
        "huge": b'{"topic": "t", "payload": "' + b"x" * 200000 + b'"}',
    }
    for name, data in messages.items():
        (mqtt / "tmp" / name).write_bytes(data)
        os.rename(mqtt / "tmp" / name, mqtt / "new" / name)
    os.mkfifo(mqtt / "tmp" / "fifo")  # reading it would block the watcher
    os.rename(mqtt / "tmp" / "fifo", mqtt / "new" / "fifo")
    os.symlink("/etc/passwd", mqtt / "tmp" / "link")  # never followed
    os.rename(mqtt / "tmp" / "link", mqtt / "new" / "link")
    odd_name = os.fsdecode(b"name\xff")  # a message's name means nothing: published
    (mqtt / "new" / odd_name).write_bytes(b'{"topic": "t", "payload": 1}')
    updates_files = {"cfg": DEEP, "cfg.2": DIGITS, "cfg.4": b'{"a":' * 33 + b"1" + b"}" * 33,
                     "sh.2": b"a='\\''\n" * 20000, "sh.3": b"x=$(touch pwned)",
                     "cfg.3": b"\xff"}
    for name, data in updates_files.items():
        (updates / "tmp" / name).write_bytes(data)
        os.rename(updates / "tmp" / name, updates / "new" / name)
    (updates / "new" / os.fsdecode(b"\xffkey")).write_bytes(b"{}")
    for name, data in {"open-tunnel": DEEP, "close-tunnel": DIGITS, "refetch.x": b"",
                       os.fsdecode(b"refetch\xff"): b""}.items():
        (commands / "new" / name).write_bytes(data)
    expected = {mqtt: set(messages) | {"fifo", "link"},
                updates: set(updates_files) | {os.fsdecode(b"\xffkey")},
                commands: {"open-tunnel", "close-tunnel", "refetch.x"}}
    for directory, names in expected.items():
        wait_until(lambda: names <= set(os.listdir(directory / "failed")), timeout=20,
                   message=lambda: f"{directory}/failed: {os.listdir(directory / 'failed')}"
                   f"\n{daemon.log()}")
    wait_until(lambda: not (mqtt / "new" / odd_name).exists(), message="the odd name")
    log = daemon.log()
    for reason in ("nested too deeply", "Exceeds the limit", "not UTF-8",
                   "is reserved", "wildcard", "not a regular file", "payload is",
                   "link: cannot read: is a symbolic link",
                   "nested deeper than 32 levels", "too ambiguous", "expansions"):
        assert reason in log, reason
    # the good still goes through
    write_message(mqtt, "good", '{"topic": "$aws/rules/r/ok", "payload": {"k": 1}}')
    wait_until(lambda: not (mqtt / "new" / "good").exists(), timeout=15,
               message=lambda: daemon.log())
    (updates / "tmp" / "cfg.9").write_text('{"n": 9}')
    os.rename(updates / "tmp" / "cfg.9", updates / "new" / "cfg.9")
    wait_until(lambda: read(outfiles["cfg"]) and json.loads(read(outfiles["cfg"])) == {"n": 9},
               timeout=15, message=lambda: daemon.log())
    still_works(sim, daemon, outfiles, 3)
    assert children(daemon) == before, daemon.log()
    assert "crashed" not in daemon.log() and "pwned" not in os.listdir(tmp_path)


def test_bad_service_definitions_are_skipped(sim, daemons, tmp_path):
    svcs = tmp_path / "svcs"
    svcs.mkdir()
    bad = {"deep.json": b'{"key": ' + DEEP + b"}",
           "nested.js": b"module.exports = {key: " + b"[" * 3000 + b"]" * 3000 + b"}",
           "digits.js": b"module.exports = {key: " + DIGITS + b"}",
           "latin1.js": b"module.exports = {key: 'caf\xe9', notifycmd: 'true'}",
           "latin1.py": b"key = 'caf\xe9'\n",
           os.fsdecode(b"name\xff.json"): b'{"key": 1}'}
    for name, data in bad.items():
        (svcs / name).write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    cfg = service(svcs, out, "cfg", "JSON")
    daemon = daemons([f"--clientid={THING}", f"--cacert={sim.cafile}",
                      f"--certstore={sim.device(THING)}", f"--services={THING}:{svcs}"],
                     tmp_path)
    daemon.wait_log(r"shadow (fetched|created)", timeout=20)
    skipped = re.findall(r"service definition (.*?) skipped: ", daemon.log())
    assert len(skipped) == len(bad), daemon.log()
    sim.set_desired(THING, None, {"cfg": {"ok": True}})
    wait_until(lambda: read(cfg) and json.loads(read(cfg)) == {"ok": True}, timeout=15,
               message=lambda: daemon.log())
