"""Fuzz: update files (name and content, in each informat, through the real applier's
`on_local_update`) and command files (routing, open-tunnel / close-tunnel, tunnel
notifications). A bad file is answered `rejected` with a reason (it goes to failed/);
nothing raises; every frame sent is valid."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from chariotd.ipc.messages import Applied, Command, Rejected, encode
from chariotd.aws.tunnel_request import (BadTunnelRequest, parse_close_command,
                                     parse_notification, parse_open_command)
from chariotd.watchers.requests import COMMAND_OWNERS, command_route, update_route

from fake_applier import SERVICES, THING, FakeApplier
from fuzz_values import dumps, fuzz_settings, hostile_bytes, json_values, mutated, text

shell_texts = st.one_of(
    st.text(max_size=80),
    st.lists(st.tuples(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True),
                       st.text(max_size=12)), max_size=4).map(
        lambda pairs: "".join(f"{k}='{v}'\n" for k, v in pairs)),
    st.sampled_from(["a=$(touch pwned)", "a=`id`", "a='x", "a=(1 2", "PATH='/x'",
                     "a_b=1\na=2", "a" + "_a" * 40 + "=1", "export a=1; b=\"$c\"",
                     "a=\\", "a='it\\'s'", "a=\"x\\\"y\"", "a=1 b=2"]))
contents = st.one_of(hostile_bytes(("a", "b", "x")), shell_texts.map(
    lambda t: t.encode("utf-8", "surrogatepass")))
names = st.one_of(st.sampled_from(list(SERVICES) + ["other", "", ".hidden"]), text,
                  st.binary(min_size=1, max_size=12).map(os.fsdecode))


@fuzz_settings(100)
@given(st.lists(st.tuples(names, st.sampled_from(["", ".1", ".x.y"]), contents),
                min_size=1, max_size=6))
def test_update_files(files):
    with tempfile.TemporaryDirectory() as root:
        fake = FakeApplier(Path(root))
        route = update_route(THING, None)
        answers = {}
        fake.applier._finish = lambda request, reason: answers.__setitem__(request[1], reason)
        for index, (key, suffix, data) in enumerate(files):
            name = (key + suffix).replace("/", "_").replace("\0", "_")
            routed = route(name, data, index)
            if isinstance(routed, str):
                continue  # the watcher moves the file to failed/ with this reason
            owner, message = routed
            encode(message, "upd0")  # the watcher sends it: must be a valid frame
            fake.applier.on_local_update("upd0", message)
        fake.link_up()  # offline updates are reported once connected
        fake.get_accepted({})
        for _ in range(len(files) + 2):
            fake.accept_update()
        assert all(reason is None or isinstance(reason, str) for reason in answers.values())
        for role, message in fake.mailbox.sent:
            assert not isinstance(message, (Applied, Rejected)) or role == "upd0"


@fuzz_settings(300)
@given(st.one_of(st.sampled_from(list(COMMAND_OWNERS) + ["rm", "../x"]), text),
       hostile_bytes(("thing", "region", "services", "token")))
def test_command_files(name, data):
    routed = command_route(name, data, 1, dict(COMMAND_OWNERS, reprovision="link"))
    if isinstance(routed, str):
        return
    owner, command = routed
    assert isinstance(command, Command) and name in COMMAND_OWNERS
    encode(command, "cmd")


tunnel_fields = st.one_of(json_values, st.sampled_from(["dev1", "SSH", "destination",
                                                        "source", "us-east-1"]),
                          st.lists(st.sampled_from(["SSH", "VNC", "", "x"]), max_size=3))
TOKEN = "tok-3b0d9a7c5e1f"


@fuzz_settings(300)
@given(st.one_of(
    st.fixed_dictionaries({}, optional={k: tunnel_fields for k in (
        "thing", "region", "services", "clientMode")}).map(
        lambda d: dumps(dict(d, token=TOKEN, clientAccessToken=TOKEN))),
    mutated(st.just(dumps({"thing": "dev1", "region": "r", "services": ["SSH"],
                           "token": TOKEN, "clientAccessToken": TOKEN,
                           "clientMode": "destination"}))),
    hostile_bytes(("thing", "region", "services", "token", "clientMode"))))
def test_tunnel_requests_and_the_token_is_never_in_a_reason(data):
    for parse in (lambda d: parse_notification("dev1", d), parse_open_command,
                  parse_close_command):
        try:
            request = parse(data)
        except BadTunnelRequest as error:
            assert TOKEN not in str(error)
        else:
            assert TOKEN not in repr(request)


def test_open_tunnel_commands_through_the_applier(tmp_path):
    """Hostile open-tunnel / close-tunnel files through Applier.on_command: rejected
    with a reason, never a crash, and no proxy started for an unmapped thing."""
    fake = FakeApplier(tmp_path, ["--tunnelmappings=dev1:SSH=22",
                                  "--tunnelproxy=/nonexistent/localproxy"])
    replies = []
    fake.applier._finish = lambda request, reason: replies.append(reason)
    for name, data in [("open-tunnel", b"\xff"), ("open-tunnel", b"[" * 100000),
                       ("open-tunnel", dumps({"thing": "other", "region": "r",
                                              "services": ["SSH"], "token": TOKEN})),
                       ("open-tunnel", dumps({"thing": "dev1", "region": "r",
                                              "services": ["VNC"], "token": TOKEN})),
                       ("open-tunnel", dumps({"thing": "dev1", "region": "r",
                                              "services": ["SSH"], "token": TOKEN})),
                       ("close-tunnel", b"1" * 5000), ("close-tunnel", b'{"thing": "x"}')]:
        fake.applier.on_command("cmd", Command(id=1, name=name, data=data))
    assert all(isinstance(reason, str) and TOKEN not in reason for reason in replies)
    assert not fake.applier.tunnels.running
