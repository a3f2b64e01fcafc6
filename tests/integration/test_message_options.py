"""Message publishing in depth (EXTENSIONS A), end to end: backlog orders and
priorities, per-directory options, topic prefix/suffix, letterheads, compression. The
real chariotd tree against a real Mosquitto; several directories share one tree where
they can, each with its own settings."""

from __future__ import annotations

import gzip
import json
import os
import re
import time
import zlib
from pathlib import Path

from support import wait_until, write_message

BASE_TIME = 1_700_000_000  # some day; the worked example's clock times are on it


def message(topic, payload, **extra):
    return json.dumps({"topic": topic, "payload": payload, **extra})


def files_in(path: Path):
    return sorted(os.listdir(path)) if path.exists() else []


def action_dir(root: Path, name: str) -> Path:
    path = root / name
    for sub in ("tmp", "new", "failed"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def place(directory: Path, name: str, content: str, hhmm: str = None) -> None:
    """A file already waiting in new/ before chariotd starts, with an mtime."""
    path = directory / "new" / name
    path.write_text(content)
    if hhmm is not None:
        hours, minutes = map(int, hhmm.split(":"))
        when = BASE_TIME + hours * 3600 + minutes * 60
        os.utime(path, (when, when))


def executable(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def payloads(subscriber, topic):
    return [m.payload.decode() for m in subscriber.received(topic)]


# EXTENSIONS A's worked example: (file, mtime, extra keys)
WORKED_EXAMPLE = [
    ("A", "23:12", {}),
    ("B", "11:51", {"priority": 2}),
    ("C", "03:22", {"priority_slot": "xyz", "priority": 1}),
    ("D", "11:51", {"priority_slot": "xyz", "priority": 1}),
    ("E", "16:20", {"priority": 3}),
    ("F", "11:45", {}),
]


def test_orders_priorities_prefix_and_suffix_with_four_directories(
        daemons, base_args, subscriber, tmp_path):
    """The worked example waiting at start in four directories, one per order; the
    defaults (order, prefix) apply where a directory has no value of its own."""
    dirs = {order: action_dir(tmp_path, order) for order in
            ("lexical", "oldest-first", "newest-first", "reverse-lexical")}
    for directory in dirs.values():
        for name, hhmm, extra in WORKED_EXAMPLE:
            place(directory, name, message("ex", name, **extra), hhmm)
    bad = dirs["lexical"]
    place(bad, "G-bad-priority", message("ex", "G", priority="high"))
    place(bad, "H-bad-slot", message("ex", "H", priority_slot={"a": 1}))
    lexical, oldest, newest, reverse = dirs.values()
    daemon = daemons([
        *base_args, *(f"--messages={d}" for d in dirs.values()),
        "--default-message-order=reverse-lexical",   # reverse uses the default
        f"--message-order={lexical}:lexical",
        f"--message-order={oldest}:oldest-first", f"--message-order={newest}:newest-first",
        "--default-message-topic-prefix=dev1/", f"--message-topic-prefix={reverse}:rev/",
        f"--message-topic-suffix={oldest}:/old", f"--message-topic-suffix={newest}:/new",
    ], tmp_path)
    subscriber.wait_for(24)
    assert "".join(payloads(subscriber, "dev1/ex")) == "DBEACF"
    assert "".join(payloads(subscriber, "dev1/ex/old")) == "DBECFA"
    assert "".join(payloads(subscriber, "dev1/ex/new")) == "DBEAFC"
    assert "".join(payloads(subscriber, "rev/ex")) == "DBEFCA"
    for directory in dirs.values():
        wait_until(lambda: files_in(directory / "new") == [], message="new/ empty")
    assert files_in(bad / "failed") == ["G-bad-priority", "H-bad-slot"]
    log = daemon.log()
    assert "G-bad-priority: priority must be a number" in log
    assert "H-bad-slot: priority_slot must be a string or a number" in log


GATED_GENERATOR = """\
name=$(basename "$MESSAGE_FILENAME")
env > {record}/$name.env
while [ ! -e {record}/gate ]; do sleep 0.02; done
printf '{{"payload": {{"from": "generator"}}, "qos": 0, "priority": 99}}'
"""


def read_env(path: Path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_generator_letterhead_environment_and_live_priorities(daemons, base_args, subscriber,
                                                              tmp_path):
    """Files that arrive together while one message holds the only window slot go out
    prioritised first, a slot's older message demoted; the generator sees each message
    through MESSAGE_* and inherits none of chariotd's secrets."""
    mqtt, record = action_dir(tmp_path, "mqtt"), tmp_path / "record"
    record.mkdir()
    generator = executable(tmp_path / "letterhead-gen", GATED_GENERATOR.format(record=record))
    daemon = daemons([*base_args, f"--messages={mqtt}", "--default-message-concurrency=1",
                      f"--default-letterhead-generator={generator}",
                      "--default-message-topic-suffix=/x"], tmp_path,
                     env={"SECRET_TOKEN": "s3cret"})
    daemon.wait_connected()
    write_message(mqtt, "first", message("t/live", {"n": "first"}))
    wait_until(lambda: (record / "first.env").exists(), message="the generator running")
    for name, extra in [("a1", {}), ("a2", {}), ("s-old", {"priority_slot": 5}),
                        ("p9", {"priority": 9}), ("p0", {"priority": 0}),
                        ("s-new", {"priority_slot": 5, "priority": 4})]:
        write_message(mqtt, name, message("t/live", {"n": name}, **extra))
    (record / "gate").touch()
    received = subscriber.wait_for(7)
    assert [json.loads(m.payload)["n"] for m in received] == [
        "first", "p0", "s-new", "p9", "a1", "a2", "s-old"]
    assert all(json.loads(m.payload)["from"] == "generator" and m.qos == 0
               for m in received)
    env = {name: read_env(record / f"{name}.env") for name in ("p0", "s-new", "s-old", "a1")}
    assert env["p0"]["MESSAGE_TOPIC"] == "t/live/x"
    assert env["p0"]["MESSAGE_FILENAME"] == str(mqtt / "new" / "p0")
    assert env["p0"]["MESSAGE_PRIORITY"] == "0" and env["p0"]["MESSAGE_WAS_PRIORITISED"] == "1"
    assert env["s-new"]["MESSAGE_PRIORITY_SLOT"] == "5"
    assert env["s-new"]["MESSAGE_WAS_PRIORITISED"] == "1"
    assert env["s-old"]["MESSAGE_PRIORITY"] == "1"          # a slot's default priority
    assert env["s-old"]["MESSAGE_WAS_PRIORITISED"] == ""    # demoted
    assert env["a1"]["MESSAGE_PRIORITY"] == env["a1"]["MESSAGE_PRIORITY_SLOT"] == ""
    stamp, seconds = env["a1"]["MESSAGE_TIMESTAMP"], env["a1"]["MESSAGE_TIMESTAMP_S"]
    assert re.fullmatch(r"\d+\.\d{6}", stamp) and int(stamp[:-7]) // 1000 == int(seconds)
    assert abs(int(seconds) - time.time()) < 60
    for recorded in env.values():
        assert "SECRET_TOKEN" not in recorded and recorded["PATH"]
        extra = {k for k in recorded if not k.startswith("MESSAGE_")}
        assert extra <= {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "PWD", "SHLVL", "_"}
    wait_until(lambda: files_in(mqtt / "new") == [], message="new/ empty")


def test_failing_and_slow_generators_are_failed_attempts(daemons, base_args, subscriber,
                                                          tmp_path):
    failing, slow, fine = (action_dir(tmp_path, n) for n in ("failing", "slow", "fine"))
    place(failing, "f1", message("t/failing", {"n": 1}))
    place(slow, "s1", message("t/slow", {"n": 1}))
    place(fine, "ok", message("t/fine", {"n": 1}))
    bad_gen = executable(tmp_path / "bad-gen", "echo oops >&2\nexit 3\n")
    not_json = executable(tmp_path / "not-json-gen", "echo '[1, 2]'\n")
    slow_gen = executable(tmp_path / "slow-gen", "exec sleep 30\n")
    daemon = daemons([*base_args, f"--messages={failing}", f"--messages={slow}",
                      f"--messages={fine}",
                      f"--default-letterhead-generator={bad_gen}",
                      f"--letterhead-generator={slow}:{slow_gen}",
                      f"--letterhead-generator={fine}:{not_json}",
                      f"--message-retries={failing}:1", f"--message-retries={slow}:0",
                      f"--message-retries={fine}:0"], tmp_path)
    wait_until(lambda: files_in(failing / "failed") == ["f1"], timeout=10,
               message="f1 in failed/")
    wait_until(lambda: files_in(fine / "failed") == ["ok"], timeout=10)
    wait_until(lambda: files_in(slow / "failed") == ["s1"], timeout=12,
               message="s1 in failed/ after the 5 s limit")
    log = daemon.log()
    assert f"f1: letterhead generator: {bad_gen} exited with status 3; will retry" in log
    assert (f"f1: letterhead generator: {bad_gen} exited with status 3 (after 2 attempts); "
            "moved to failed/") in log
    assert "oops" in log  # its stderr is ours
    assert "ok: letterhead generator: its output: a letterhead is a JSON object, not list" \
        in log
    assert f"s1: letterhead generator: {slow_gen} timed out and was killed" in log
    assert subscriber.received() == []


def test_letterhead_files_and_compression(daemons, base_args, subscriber, tmp_path):
    shared, own, missing = (action_dir(tmp_path, n) for n in ("shared", "own", "missing"))
    letterhead = tmp_path / "letterhead.json"
    letterhead.write_text(json.dumps({"qos": 0, "compress": "gzip", "priority": 1,
                                      "payload": {"device": "d1", "fw": "1"}}))
    own_letterhead = tmp_path / "own.json"
    own_letterhead.write_text(json.dumps({"payload": {"site": "b"}}))
    daemon = daemons([*base_args, *(f"--messages={d}" for d in (shared, own, missing)),
                      f"--default-letterhead-file={letterhead}",
                      f"--letterhead-file={own}:{own_letterhead}",
                      f"--letterhead-file={missing}:{tmp_path / 'nowhere.json'}",
                      f"--message-retries={missing}:0"], tmp_path)
    daemon.wait_connected()
    write_message(shared, "m1", message("t/shared", {"fw": "2", "temp": 1}))
    first = subscriber.wait_for(1, topic="t/shared")[0]
    assert json.loads(gzip.decompress(first.payload)) == {"device": "d1", "fw": "2", "temp": 1}
    assert first.qos == 0
    # read right before each publish: a change shows in the next message
    letterhead.write_text(json.dumps({"payload": {"device": "d2"}}))
    write_message(shared, "m2", message("t/shared", {"temp": 2}, qos=1))
    second = subscriber.wait_for(2, topic="t/shared")[1]
    assert json.loads(second.payload) == {"device": "d2", "temp": 2} and second.qos == 1
    # the directory's own letterhead replaces the default: no gzip, no device
    write_message(own, "deflated", message("t/own", {"n": 1}, compress="deflate"))
    write_message(own, "plain", message("t/own", "text", compress="zip"))
    received = subscriber.wait_for(2, topic="t/own")
    plain = [m for m in received if m.payload == b"text"]
    deflated = [m for m in received if m.payload != b"text"]
    assert len(plain) == len(deflated) == 1
    assert json.loads(zlib.decompress(deflated[0].payload)) == {"site": "b", "n": 1}
    wait_until(lambda: "plain: compress \"zip\" is not one of gzip, deflate; published "
               "uncompressed" in daemon.log(), message="the compress warning")
    # a letterhead that cannot be read is a failed attempt
    write_message(missing, "lost", message("t/missing", 1))
    wait_until(lambda: files_in(missing / "failed") == ["lost"], message="lost in failed/")
    assert (f"lost: letterhead file {tmp_path / 'nowhere.json'}: No such file or directory "
            "(after 1 attempts); moved to failed/") in daemon.log()
    assert subscriber.received("t/missing") == []


def test_a_missing_letterhead_pauses_instead_of_failing_the_whole_backlog(
        daemons, base_args, subscriber, tmp_path):
    mqtt = tmp_path / "lh-missing"
    letterhead = tmp_path / "letterhead.json"
    for sub in ("tmp", "new", "failed"):
        (mqtt / sub).mkdir(parents=True)
    for index in range(10):
        (mqtt / "new" / f"m{index}").write_text(json.dumps({"topic": "t/lh", "payload": {}}))
    daemon = daemons([*base_args, f"--messages={mqtt}", f"--letterhead-file={mqtt}:{letterhead}",
                      "--default-message-retries=0"], tmp_path,
                     env={"CHARIOTD_BACKOFF_BASE": "0.2"})
    daemon.wait_log(r"publishing paused for 0.4 s")
    # Paused 0.2, 0.4, 0.8 ... s between attempts: far from all ten failed by now.
    assert len(os.listdir(mqtt / "failed")) <= 4
    letterhead.write_text(json.dumps({"payload": {"from": "letterhead"}}))
    wait_until(lambda: os.listdir(mqtt / "new") == [], timeout=20, message="the rest sent")
    sent = len(subscriber.wait_for(10 - len(os.listdir(mqtt / "failed")), topic="t/lh"))
    assert sent >= 6
    assert "letterhead file" in daemon.log()


def test_a_fifo_or_symlink_as_letterhead_file_never_hangs_the_watcher(
        daemons, base_args, subscriber, tmp_path):
    """The letterhead file's writer may be an unprivileged program: a FIFO put there is
    not waited on (the watcher keeps its loop: it pauses and says why), a symlink is not
    followed; once a regular file is back, the backlog goes out."""
    mqtt = tmp_path / "lh-fifo"
    letterhead = tmp_path / "letterhead.json"
    for sub in ("tmp", "new", "failed"):
        (mqtt / sub).mkdir(parents=True)
    os.mkfifo(letterhead)
    (mqtt / "new" / "m0").write_text(json.dumps({"topic": "t/lhfifo", "payload": {}}))
    daemon = daemons([*base_args, f"--messages={mqtt}", f"--letterhead-file={mqtt}:{letterhead}",
                      "--default-message-retries=5"], tmp_path,
                     env={"CHARIOTD_BACKOFF_BASE": "0.2"})
    daemon.wait_log(r"letterhead file .*: is a FIFO, not a regular file")
    os.unlink(letterhead)
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"payload": {"secret": "root-only"}}))
    os.symlink(secret, letterhead)
    daemon.wait_log(r"letterhead file .*: is a symbolic link")
    os.unlink(letterhead)
    letterhead.write_text(json.dumps({"payload": {"from": "letterhead"}}))
    wait_until(lambda: os.listdir(mqtt / "new") == [], timeout=20, message="the file sent")
    [message] = subscriber.wait_for(1, topic="t/lhfifo")
    assert b"root-only" not in message.payload
    assert os.listdir(mqtt / "failed") == []
