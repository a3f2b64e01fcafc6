"""Shadow keys as config files: the applier against chariotd-sim and the real tree."""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
from pathlib import Path

import pytest

from support import kill_tree_mid_command, wait_until, write_message


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


class Device:
    """A thing with a services directory, outfiles and a log of notify commands."""

    def __init__(self, sim, tmp_path: Path, thing: str = "dev1"):
        self.sim = sim
        self.thing = thing
        self.root = tmp_path / thing
        self.svcs = self.root / "svcs"
        self.out = self.root / "out"
        self.svcs.mkdir(parents=True)
        self.out.mkdir()
        self.notified = self.root / "notified"
        self.certstore = sim.device(thing)

    def service(self, key: str, outformat="JSON", extra="", shadow_dir=None):
        (shadow_dir or self.svcs).mkdir(exist_ok=True)
        (shadow_dir or self.svcs).joinpath(f"{key}.js").write_text(textwrap.dedent(f"""\
            module.exports = {{
              key: '{key}',
              outfile: '{self.out / key}',
              outformat: '{outformat}',
              informat: 'JSON',
              notifycmd: 'echo {key} >> {self.notified}',
              {extra}
            }}
            """))
        return self.out / key

    def notifications(self):
        try:
            return self.notified.read_text().split()
        except FileNotFoundError:
            return []

    def args(self, *extra):
        return [f"--clientid={self.thing}", f"--cacert={self.sim.cafile}",
                f"--certstore={self.certstore}", *extra]

    def shadow(self, shadow=None):
        return self.sim.get_shadow(self.thing, shadow) or {}

    def state(self, section, shadow=None):
        return self.shadow(shadow).get("state", {}).get(section, {})


@pytest.fixture
def device(sim, tmp_path):
    return Device(sim, tmp_path)


def start(daemons, device, tmp_path, *extra):
    daemon = daemons(device.args(f"--services={device.thing}:{device.svcs}", *extra), tmp_path)
    daemon.wait_log(r"shadow (fetched|created)")
    return daemon


def test_desired_change_reaches_outfile_and_notify_then_reported(daemons, device, tmp_path):
    outfile = device.service("foo")
    start(daemons, device, tmp_path)
    device.sim.set_desired("dev1", None, {"foo": {"led": "red", "n": 2}})
    wait_until(lambda: read_json(outfile) == {"led": "red", "n": 2}, message="outfile")
    wait_until(lambda: device.notifications() == ["foo"], message="notify")
    wait_until(lambda: device.state("reported").get("foo") == {"led": "red", "n": 2},
               message="reported")
    wait_until(lambda: "delta" not in device.shadow().get("state", {})
               and "foo" not in device.state("desired"), message="desired cleared")


def test_two_services_only_the_changed_one_is_notified(daemons, device, tmp_path):
    foo, bar = device.service("foo"), device.service("bar", outformat="SHELL")
    start(daemons, device, tmp_path)
    device.sim.set_desired("dev1", None, {"bar": {"speed": 3, "name": "it's"}})
    wait_until(lambda: device.notifications() == ["bar"], message="bar notified")
    assert bar.read_text() == "name='it'\\''s'\nspeed='3'\n"
    wait_until(lambda: device.state("reported").get("bar") == {"speed": 3, "name": "it's"})
    assert not foo.exists() and device.notifications() == ["bar"]


def test_outfile_edited_by_hand_is_reported_on_next_fetch(daemons, device, tmp_path):
    outfile = device.service("foo")
    daemon = start(daemons, device, tmp_path)
    device.sim.set_desired("dev1", None, {"foo": {"a": 1}})
    wait_until(lambda: device.state("reported").get("foo") == {"a": 1})
    outfile.write_text(json.dumps({"a": 5, "b": "x"}))
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: device.state("reported").get("foo") == {"a": 5, "b": "x"},
               message="hand edit reported")


def test_reported_differing_from_outfile_is_overwritten_at_start(daemons, device, tmp_path):
    outfile = device.service("foo")
    outfile.write_text(json.dumps({"mode": "local"}))
    device.sim.set_reported("dev1", None, {"foo": {"mode": "cloud", "extra": 1}})
    start(daemons, device, tmp_path)
    wait_until(lambda: device.state("reported").get("foo") == {"mode": "local"})
    assert device.notifications() == []  # the outfile did not change


def test_delete_and_null_remove_keys(daemons, device, tmp_path):
    outfile = device.service("foo")
    outfile.write_text(json.dumps({"a": 1, "b": 2, "c": {"d": 3, "e": 4}}))
    start(daemons, device, tmp_path, "--empty-array-as-delete-request")
    # null in desired deletes from desired itself (AWS), so DELETE is how the cloud asks
    device.sim.set_desired("dev1", None, {"foo": {"a": "DELETE", "c": {"d": "DELETE"},
                                              "b": []}})
    wait_until(lambda: read_json(outfile) == {"c": {"e": 4}}, message="keys removed")
    wait_until(lambda: device.state("reported").get("foo") == {"c": {"e": 4}})


def test_named_shadow_beside_the_classic_one(daemons, device, tmp_path):
    classic = device.service("foo")
    named_dir = device.root / "named"
    named = device.service("net", shadow_dir=named_dir)
    daemon = daemons(device.args(f"--services=dev1:{device.svcs}",
                                 f"--services=dev1/cfg:{named_dir}"), tmp_path)
    wait_until(lambda: len(re.findall("shadow (fetched|created)", daemon.log())) >= 2)
    device.sim.set_desired("dev1", "cfg", {"net": {"ip": "10.0.0.2"}})
    device.sim.set_desired("dev1", None, {"foo": {"x": 1}})
    wait_until(lambda: read_json(named) == {"ip": "10.0.0.2"})
    wait_until(lambda: read_json(classic) == {"x": 1})
    wait_until(lambda: device.state("reported", "cfg").get("net") == {"ip": "10.0.0.2"})
    assert "net" not in device.state("reported") and "foo" not in device.state("reported", "cfg")


def test_validate_outkeys_notifykeys_initialnotify_ephemeral(daemons, device, tmp_path):
    (device.svcs / "checked.py").write_text(textwrap.dedent(f"""\
        key = 'checked'
        outfile = '{device.out / "checked"}'
        outformat = 'JSON'
        notifycmd = 'echo checked >> {device.notified}'
        def validate(cfg):
            if cfg.get('port', 0) > 65535:
                raise ValueError('port out of range')
            cfg['validated'] = True
            return cfg
        """))
    picked = device.service("picked", extra="outkeys: ['keep'], notifykeys: ['keep'],")
    device.service("first", extra="initialnotify: true,")
    (device.svcs / "reboot.json").write_text(json.dumps({
        "key": "reboot", "ephemeraldata": True,
        "notifycmd": f"cat > {device.root / 'reboot-input'}; echo reboot >> {device.notified}"}))
    start(daemons, device, tmp_path)
    wait_until(lambda: device.notifications() == ["first"], message="initialnotify")
    device.sim.set_desired("dev1", None, {"checked": {"port": 99999}})
    wait_until(lambda: "desired" not in device.shadow().get("state", {}),
               message="refused change cleared from desired")
    assert not (device.out / "checked").exists()
    device.sim.set_desired("dev1", None, {"checked": {"port": 80}})
    wait_until(lambda: read_json(device.out / "checked") == {"port": 80, "validated": True})
    device.sim.set_desired("dev1", None, {"picked": {"keep": 1, "noise": 2}})
    wait_until(lambda: read_json(picked) == {"keep": 1})
    wait_until(lambda: device.state("reported").get("picked") == {"keep": 1, "noise": 2})
    device.sim.set_desired("dev1", None, {"picked": {"noise": 3}})
    wait_until(lambda: device.state("reported").get("picked") == {"keep": 1, "noise": 3})
    device.sim.set_desired("dev1", None, {"reboot": {"now": True}})
    wait_until(lambda: "reboot" in device.notifications())
    assert json.loads((device.root / "reboot-input").read_text()) == {"now": True}
    assert "reboot" not in device.state("reported")
    assert device.notifications().count("picked") == 1
    assert device.notifications().count("checked") == 1


def test_notify_failure_and_timeout_are_logged(daemons, device, tmp_path):
    device.service("slow", extra="timeout: 0.5,")
    (device.svcs / "slow.js").write_text((device.svcs / "slow.js").read_text().replace(
        f"echo slow >> {device.notified}", "sleep 30"))
    device.service("bad")
    (device.svcs / "bad.js").write_text((device.svcs / "bad.js").read_text().replace(
        f"echo bad >> {device.notified}", "echo oops >&2; exit 3"))
    daemon = start(daemons, device, tmp_path)
    device.sim.set_desired("dev1", None, {"slow": {"a": 1}, "bad": {"b": 1}})
    daemon.wait_log(r"service bad: notify command exited with status 3: oops")
    daemon.wait_log(r"service slow: notify command timed out and was killed")
    wait_until(lambda: device.state("reported").get("bad") == {"b": 1})


def test_a_notify_interrupted_by_a_kill_runs_again_after_the_restart(daemons, device,
                                                                      tmp_path):
    """SIGKILL of the tree after the outfile was written but before its notify command
    finished: the next start finds the outfile up to date, and notifies anyway."""
    outfile = device.service("foo")
    pidfile, flag = device.root / "notify.pid", device.root / "slept"
    (device.svcs / "foo.js").write_text((device.svcs / "foo.js").read_text().replace(
        f"echo foo >> {device.notified}",
        f"echo foo >> {device.notified}; [ -e {flag} ] && exit 0; touch {flag}; "
        f"echo $$ > {pidfile}; exec sleep 30"))
    daemon = start(daemons, device, tmp_path)
    device.sim.set_desired("dev1", None, {"foo": {"a": 1}})
    kill_tree_mid_command(daemon, pidfile)  # the notify never finishes
    assert read_json(outfile) == {"a": 1}
    assert device.notifications() == ["foo"]
    daemon = start(daemons, device, tmp_path)
    wait_until(lambda: device.notifications() == ["foo", "foo"],
               message="notified again after the restart")
    daemon.wait_log(r"service foo: its notify command did not finish before chariotd stopped")
    wait_until(lambda: not (device.out / ".foo.notify-pending").exists(),
               message="the marker removed once the command finished")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(5) == 0
    device.service("bar")
    start(daemons, device, tmp_path)  # finished this time: no third notification
    device.sim.set_desired("dev1", None, {"bar": {"b": 2}})  # a barrier after the start
    wait_until(lambda: "bar" in device.notifications(), message="bar notified")
    assert device.notifications() == ["foo", "foo", "bar"]


def test_bad_definitions_are_skipped_and_the_rest_runs(daemons, device, tmp_path):
    good = device.service("good")
    (device.svcs / "broken.js").write_text("module.exports = { key: 'x', ")
    (device.svcs / "nokey.json").write_text(json.dumps({"notifycmd": "true"}))
    (device.svcs / "jsvalidate.js").write_text(
        "const fs = require('fs');\n"  # refused by the engine, or names the extra
        "module.exports = { key: 'v', notifycmd: 'true', outfile: '/tmp/v', "
        "outformat: 'JSON', validate: function(c) { return c; } }")
    daemon = start(daemons, device, tmp_path)
    log = daemon.log()
    for name in ("broken.js", "nokey.json", "jsvalidate.js"):
        assert f"service definition {device.svcs / name} skipped" in log
    device.sim.set_desired("dev1", None, {"good": {"ok": True}})
    wait_until(lambda: read_json(good) == {"ok": True})


def test_shadow_update_files(daemons, device, tmp_path):
    outfile = device.service("foo")
    updates = device.root / "updates"
    daemon = daemons(device.args(f"--services=dev1:{device.svcs}",
                                 f"--updates=dev1:{updates}"), tmp_path)
    daemon.wait_log(r"shadow (fetched|created)")
    write_message(updates, "foo.1", json.dumps({"a": 1}))
    write_message(updates, "other.1", json.dumps({"free": "form"}))
    wait_until(lambda: read_json(outfile) == {"a": 1})
    wait_until(lambda: device.state("reported").get("other") == {"free": "form"})
    wait_until(lambda: device.state("reported").get("foo") == {"a": 1})
    wait_until(lambda: os.listdir(updates / "new") == [], message="new/ empty")
    write_message(updates, "foo.2", "{not json")
    wait_until(lambda: os.listdir(updates / "failed") == ["foo.2"])
    assert "foo.2: not valid JSON" in daemon.log()


def test_updates_before_the_first_connection(daemons, device, tmp_path):
    outfile = device.service("foo")
    updates = device.root / "updates"
    for sub in ("tmp", "new", "failed"):
        (updates / sub).mkdir(parents=True)
    (updates / "new" / "foo.1").write_text(json.dumps({"a": 1}))
    (updates / "new" / "foo.2").write_text(json.dumps({"b": 2}))
    device.sim.broker.stop()
    daemons(device.args(f"--services=dev1:{device.svcs}",
                                 f"--updates=dev1:{updates}"), tmp_path,
                     env={"CHARIOTD_BACKOFF_BASE": "0.2"})
    wait_until(lambda: read_json(outfile) == {"a": 1, "b": 2}, message="applied offline")
    assert sorted(os.listdir(updates / "new")) == ["foo.1", "foo.2"]  # not reported yet
    device.sim.broker.start()
    wait_until(lambda: device.state("reported").get("foo") == {"a": 1, "b": 2}, timeout=20)
    wait_until(lambda: os.listdir(updates / "new") == [])


def test_default_shadow_and_refetch_command(daemons, device, tmp_path):
    outfile = device.service("foo")
    command = device.root / "default.sh"
    command.write_text("#!/bin/sh\nread thing\n"
                       "echo '{\"foo\": {\"from\": \"'$thing'\"}, \"extra\": 1}'\n")
    command.chmod(0o755)
    commands = device.root / "cmds"
    daemon = daemons(device.args(f"--services=dev1:{device.svcs}",
                                 f"--defaultshadow=dev1:{command}",
                                 f"--commands={commands}"), tmp_path)
    wait_until(lambda: device.state("reported") == {"foo": {"from": "dev1"}, "extra": 1},
               message="default shadow created")
    assert read_json(outfile) == {"from": "dev1"}
    fetches = daemon.log().count("shadow fetched")
    write_message(commands, "refetch", "")
    wait_until(lambda: daemon.log().count("shadow fetched") > fetches, message="refetched")
    write_message(commands, "bogus", "")
    wait_until(lambda: os.listdir(commands / "failed") == ["bogus"])
    assert "unknown command 'bogus'" in daemon.log()
    write_message(commands, "reprovision", "")  # the link's command, refused without --fleetprov
    wait_until(lambda: sorted(os.listdir(commands / "failed")) == ["bogus", "reprovision"])
    assert "'reprovision' is not available" in daemon.log()


def test_200_services_on_one_thing(daemons, device, tmp_path):
    for index in range(200):
        device.service(f"s{index:03d}")
    start(daemons, device, tmp_path)
    device.sim.set_desired("dev1", None, {f"s{i:03d}": {"i": i} for i in range(200)})
    wait_until(lambda: all(read_json(device.out / f"s{i:03d}") == {"i": i}
                           for i in range(200)), timeout=30, message="200 outfiles")
    wait_until(lambda: len(device.state("reported")) == 200, timeout=30)
    wait_until(lambda: len(device.notifications()) == 200, timeout=30)
