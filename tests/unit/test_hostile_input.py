"""Regression tests for crashes and holes found by fuzzing and review (issue 8): each
hostile input is refused with a reason, never a crash."""

from __future__ import annotations

import os
import stat

import msgpack
import pytest

from chariotd import cli
from chariotd.provisioning import fleetprov
from chariotd.formats import FormatError, json as json_format, plaintext, shell
from chariotd.kernel.fsutil import write_file_atomic
from chariotd.ipc.messages import BadFrame, LocalUpdate, decode, encode
from chariotd.shadow.values import MAX_DEPTH, deeper_than
from chariotd.services.definitions import DefinitionError, load_file
from chariotd.aws.tunnel_request import BadTunnelRequest, parse_notification, parse_open_command
from chariotd.watchers.actiondir import ActionDir
from chariotd.watchers.requests import update_route

DEEP = b"[" * 100000
DIGITS = b"1" * 5000  # more digits than Python 3.11 converts (a ValueError, not JSON's)


def test_ipc_frame_with_str_and_bytes_keys_is_a_bad_frame():
    data = msgpack.packb({"op": "applied", "from": "x", "id": 1, b"k": 1, "z": 2},
                         use_bin_type=True)
    with pytest.raises(BadFrame, match="unknown fields"):
        decode(data)


def test_update_file_names_that_are_not_utf8_are_refused(tmp_path):
    route = update_route("dev1", None)
    name = os.fsdecode(b"caf\xe9.1")
    assert "not UTF-8" in route(name, b"{}", 1)
    owner, message = route("caf\u00e9.1", b"{}", 2)
    assert isinstance(message, LocalUpdate) and message.key == "caf\u00e9"
    encode(message, "upd0")


def test_a_fifo_in_new_is_refused_not_read(tmp_path):
    for sub in ("tmp", "new", "failed"):
        (tmp_path / sub).mkdir()
    os.mkfifo(tmp_path / "new" / "pipe")  # opening it to read would block the watcher
    actiondir = ActionDir(str(tmp_path))
    try:
        with pytest.raises(OSError, match="is a FIFO, not a regular file"):
            actiondir.read("pipe", 1000)
        os.symlink("/etc/passwd", tmp_path / "new" / "link")
        with pytest.raises(OSError, match="symbolic link"):
            actiondir.read("link", 1000)
    finally:
        actiondir.close()


def test_atomic_write_never_writes_through_a_planted_temp_name(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "outfile"
    planted = tmp_path / f".outfile.tmp-{os.getpid()}"
    os.symlink(victim, planted)
    write_file_atomic(target, b"new", mode=0o600)
    assert victim.read_text() == "precious"
    assert target.read_bytes() == b"new" and not target.is_symlink()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not planted.exists()


def test_formats_refuse_or_bound_hostile_nesting():
    with pytest.raises(FormatError):
        json_format.parse(DEEP.decode())
    # a long SHELL name is a name a file can hold: read back nested at most MAX_DEPTH
    value = shell.parse("a" + "_a" * 100 + "=1")
    assert not deeper_than(value, MAX_DEPTH) and shell.flatten(value) == {"a" + "_a" * 100: "1"}


def test_json_format_refuses_what_python_will_not_convert():
    with pytest.raises(FormatError):
        json_format.parse(DIGITS.decode())
    with pytest.raises(FormatError, match="nested deeper"):
        json_format.parse("[" * 33 + "]" * 33)
    assert json_format.parse("[" * 32 + "]" * 32)


def test_plaintext_refuses_a_lone_surrogate():
    with pytest.raises(FormatError):
        plaintext.stringify("\ud800")


@pytest.mark.parametrize("data", [DEEP, DIGITS, b"\xff"])
def test_tunnel_requests(data):
    with pytest.raises(BadTunnelRequest):
        parse_notification("dev1", data)
    with pytest.raises(BadTunnelRequest):
        parse_open_command(data)


def test_fleetprov_config_and_responses():
    for text in (DEEP.decode(), DIGITS.decode()):
        with pytest.raises(fleetprov.FleetProvError):
            fleetprov.parse(text)
        with pytest.raises(fleetprov.FleetProvError):
            fleetprov.parse_created(text.encode(), True)
        assert "not JSON" in fleetprov.describe_rejection(text.encode())
    deep_configuration = b'{"thingName": "t", "deviceConfiguration": ' + (
        b'{"a":' * 40 + b"1" + b"}" * 40) + b"}"
    with pytest.raises(fleetprov.FleetProvError, match="nested"):
        fleetprov.parse_registered(deep_configuration)


@pytest.mark.parametrize("name,data", [
    ("deep.json", b'{"key": ' + DEEP + b"}"),
    ("deep.js", b"module.exports = {key: " + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("digits.js", b"module.exports = {key: " + DIGITS + b"}"),
    ("latin1.js", b"module.exports = {key: 'caf\xe9'}"),
    ("latin1.py", b"key = 'caf\xe9'"),
])
def test_service_definitions(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DefinitionError):
        load_file(str(path))


def test_message_reserved_topics_option():
    base = ["--clientid=d", "--cacert=/c", "--certstore=/s", "--messages=/m", "--messages=/n"]
    dirs = cli.parse(base).messages
    assert [d.reserved_topics for d in dirs] == [False, False]
    dirs = cli.parse(base + ["--message-reserved-topics=/n:allow"]).messages
    assert [d.reserved_topics for d in dirs] == [False, True]
    dirs = cli.parse(base + ["--default-message-reserved-topics=allow",
                             "--message-reserved-topics=/m:refuse"]).messages
    assert [d.reserved_topics for d in dirs] == [False, True]
    with pytest.raises(cli.ConfigError, match="allow or refuse"):
        cli.parse(base + ["--default-message-reserved-topics=yes"])
