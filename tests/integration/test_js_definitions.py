"""The original's `.js` definitions with JavaScript functions, through the real tree and
chariotd-sim: validate runs in the embedded engine; a throw, an endless loop or a huge
allocation refuses that change with one log line, and the applier goes on."""

from __future__ import annotations

import textwrap

from support import cmdline, wait_until
from test_services import Device, read_json, start  # noqa: F401 (the device fixture)
from test_services import device  # noqa: F401


def original_style(device: Device, key: str, validate: str) -> None:
    """A definition as the original's README writes one, with helper code and a
    validate function."""
    (device.svcs / f"{key}.js").write_text(textwrap.dedent(f"""\
        /* {key}: written for the original chariotd */
        'use strict';

        const CHANNELS = [ 'stable', 'beta' ];

        module.exports = {{
          key: '{key}',
          outfile: '{device.out / key}',
          outformat: 'SHELL',
          informat: 'JSON',
          notifycmd: 'echo {key} >> {device.notified}',
          validate: {validate},
        }};
        """))


def applier_pid(daemon) -> int:
    return wait_until(lambda: next((pid for pid in daemon.children()
                                    if cmdline(pid) == "chariotd: applier"), None),
                      message="the applier")


def test_original_definition_with_validate_applies_and_refuses(daemons, device, tmp_path):
    original_style(device, "firmware", """function(cfg) {
            if (cfg == null) return cfg;
            if (CHANNELS.indexOf(cfg.channel) < 0)
              throw new Error(`unknown channel '${cfg.channel}'`);
            return Object.assign({}, cfg, { checked: this.key });
          }""")
    daemon = start(daemons, device, tmp_path)
    device.sim.set_desired("dev1", None, {"firmware": {"channel": "beta"}})
    wait_until(lambda: (device.out / "firmware").exists(), message="outfile")
    assert (device.out / "firmware").read_text() == "channel='beta'\nchecked='firmware'\n"
    wait_until(lambda: device.state("reported").get("firmware") ==
               {"channel": "beta", "checked": "firmware"}, message="reported")
    assert device.notifications() == ["firmware"]

    device.sim.set_desired("dev1", None, {"firmware": {"channel": "nightly"}})
    daemon.wait_log(r"validate refused the change: validate in firmware\.js: "
                    r"Error: unknown channel 'nightly'")
    wait_until(lambda: "desired" not in device.shadow().get("state", {}),
               message="refused change cleared from desired")
    assert (device.out / "firmware").read_text() == "channel='beta'\nchecked='firmware'\n"
    assert device.notifications() == ["firmware"]


def test_runaway_validate_is_stopped_and_the_applier_goes_on(daemons, device, tmp_path):
    original_style(device, "spin", """function(cfg) {
            if (cfg && cfg.mode === 'loop') for (;;) {}
            if (cfg && cfg.mode === 'grow') { const a = []; for (;;) a.push('x'.repeat(4096)); }
            if (cfg && cfg.mode === 'fs') require('fs').writeFileSync('/tmp/pwned', 'x');
            return cfg;
          }""")
    other = device.service("other")
    daemon = start(daemons, device, tmp_path)
    applier = applier_pid(daemon)
    for mode, reason in [("loop", "stopped after its time limit of 1 s"),
                         ("grow", "memory limit of 16 MiB"),
                         ("fs", r'Error: require\("fs"\) is not available')]:
        device.sim.set_desired("dev1", None, {"spin": {"mode": mode}})
        daemon.wait_log(rf"validate refused the change: validate in spin\.js: .*{reason}")
    device.sim.set_desired("dev1", None, {"spin": {"mode": "calm"}, "other": {"a": 1}})
    wait_until(lambda: read_json(other) == {"a": 1}, message="the other service applied")
    wait_until(lambda: (device.out / "spin").exists(), message="the calm change applied")
    assert (device.out / "spin").read_text() == "mode='calm'\n"
    assert applier_pid(daemon) == applier  # the same process: nothing crashed
    assert daemon.log().count("validate refused the change") == 3
