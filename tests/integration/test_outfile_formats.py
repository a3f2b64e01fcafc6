"""Outfiles write only what they read back (issue 12, finding 3), through the real
tree and chariotd-sim: SHELL names that are `_`-prefixes of each other survive other
changes and restarts; a value no outfile can hold is refused with the outfile and
reported unchanged; an unreadable outfile is held, then rewritten from the shadow."""

from __future__ import annotations

import json
import signal

from support import wait_until
from test_services import Device, read_json, start  # noqa: F401 (the device fixture)
from test_services import device  # noqa: F401

PREFIXED = {"server": "a.example", "server_port": 8883, "log": "on", "log_level": "debug"}
PREFIXED_TEXT = "log='on'\nlog_level='debug'\nserver='a.example'\nserver_port='8883'\n"


def stop(daemon) -> None:
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(10) == 0, daemon.log()


def test_prefix_names_survive_other_changes_and_restarts(daemons, device, tmp_path):
    net = device.service("net", outformat="SHELL")
    device.service("bar")
    daemon = start(daemons, device, tmp_path)
    device.sim.set_desired("dev1", None, {"net": PREFIXED})
    wait_until(lambda: device.state("reported").get("net") == PREFIXED,
               message=lambda: f"reported\n{daemon.log()}")
    assert net.read_text() == PREFIXED_TEXT
    device.sim.set_desired("dev1", None, {"net": {"mode": "x"}})
    wait_until(lambda: device.state("reported").get("net") == {**PREFIXED, "mode": "x"},
               message=lambda: f"reported after another key\n{daemon.log()}")
    assert net.read_text() == "log='on'\nlog_level='debug'\nmode='x'\n" \
        "server='a.example'\nserver_port='8883'\n"
    text = net.read_text()
    for _ in range(2):  # restarts with no cloud change: nothing rewritten or reported away
        stop(daemon)
        daemon = start(daemons, device, tmp_path)
        device.sim.set_desired("dev1", None, {"bar": {"n": len(daemon.log())}})  # a barrier
        wait_until(lambda: "bar" in device.state("reported"), message=daemon.log)
        assert net.read_text() == text
        assert device.state("reported")["net"] == {**PREFIXED, "mode": "x"}
        assert "service net: wrote" not in daemon.log()
        assert "cannot be read" not in daemon.log()


def test_a_value_no_outfile_can_hold_changes_nothing(daemons, device, tmp_path):
    sh, cfg = device.service("sh", outformat="SHELL"), device.service("cfg")
    daemon = start(daemons, device, tmp_path)
    device.sim.set_desired("dev1", None, {"sh": {"a": 1}, "cfg": {"a": 1}})
    wait_until(lambda: device.state("reported").get("sh") == {"a": 1}
               and device.state("reported").get("cfg") == {"a": 1}, message=daemon.log)
    before = sh.read_bytes(), cfg.read_bytes()
    deep = 1
    for _ in range(32):
        deep = {"d": deep}  # {"deep": deep} nests 33 levels: one more than MAX_DEPTH
    # AWS (and the simulator) hold a shadow to a few levels: a hostile broker sends it
    device.sim.publish("$aws/things/dev1/shadow/update/delta", json.dumps(
        {"state": {"sh": {"deep": deep}, "cfg": {"deep": deep}},
         "version": device.shadow()["version"]}))
    daemon.wait_log(r"change to sh refused: SHELL: the value is nested deeper than 32")
    daemon.wait_log(r"change to cfg refused: JSON: the value is nested deeper than 32")
    device.sim.set_desired("dev1", None, {"sh": {"GCONV_PATH": "/tmp/evil",
                                                 "PYTHONPATH": "/tmp/evil"}})
    daemon.wait_log(r"change to sh refused: SHELL: (GCONV_PATH|PYTHONPATH) is a variable")
    wait_until(lambda: "sh" not in device.state("desired"), message=daemon.log)
    assert (sh.read_bytes(), cfg.read_bytes()) == before
    reported = device.state("reported")
    assert reported["sh"] == {"a": 1} and reported["cfg"] == {"a": 1}
    assert sorted(device.notifications()) == ["cfg", "sh"]
    assert daemon.process.poll() is None


def test_an_unreadable_outfile_is_held_then_rewritten_from_the_shadow(daemons, device,
                                                                       tmp_path):
    cfg, net = device.service("cfg"), device.service("net", outformat="SHELL")
    daemon = start(daemons, device, tmp_path)
    device.sim.set_desired("dev1", None, {"cfg": {"a": 1}, "net": PREFIXED})
    wait_until(lambda: device.state("reported").get("net") == PREFIXED
               and device.state("reported").get("cfg") == {"a": 1}, message=daemon.log)
    stop(daemon)
    cfg.write_bytes(b"\xff\xfe{not UTF-8")  # cannot be read as text
    daemon = start(daemons, device, tmp_path)
    daemon.wait_log(r"service cfg: .*cfg cannot be read \(.*not UTF-8 text\); held")
    daemon.wait_log(r"service cfg: wrote .*cfg from the shadow's state")
    assert read_json(cfg) == {"a": 1}
    net.write_text("server='x'\nport=$(touch pwned)\n")  # garbage for its format
    daemon.signal(signal.SIGHUP)  # a refetch
    daemon.wait_log(r"service net: .*net cannot be read \(SHELL: line 2: expansions")
    daemon.wait_log(r"service net: wrote .*net from the shadow's state")
    assert net.read_text() == PREFIXED_TEXT
    reported = device.state("reported")
    assert reported["net"] == PREFIXED and reported["cfg"] == {"a": 1}
    assert not (tmp_path / "pwned").exists()
