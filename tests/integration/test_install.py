"""Installation: the wheel in fresh virtualenvs on Python 3.9 and 3.11 (the 3.9 one then
runs the real tree against a broker), and the manual page up to date with --help."""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support import wait_until

REPO = Path(__file__).resolve().parents[2]
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


def pyenv_python(version: str):
    found = sorted(glob.glob(str(PYENV / f"{version}.*" / "bin" / "python")))
    return found[-1] if found else None


def test_manpage_is_current():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "manpage"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_wheel_installs_and_runs_on_python_3_9_and_3_11(base_args, tmp_path):
    pythons = [pyenv_python("3.9"), pyenv_python("3.11")]
    if None in pythons:
        pytest.skip(f"pyenv's Python 3.9 and 3.11 are needed under {PYENV}")
    out = tmp_path / "install"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run([str(REPO / "scripts" / "check-install"), "-o", str(out),
                             *pythons], capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["ok", "3.9"], ["ok", "3.11"]]

    # The installed 3.9 tree, for real: connects, then stops with status 0 on SIGTERM.
    log_path = tmp_path / "py39.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(out / "venv-3.9" / "bin" / "chariotd"), *base_args],
                                   stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    try:
        wait_until(lambda: "link: connected to" in log_path.read_text(), timeout=15,
                   message="the Python 3.9 install connected\n" + log_path.read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(5)


def test_readme_and_service_files_agree():
    readme = (REPO / "README.md").read_text()
    unit = (REPO / "systemd" / "chariotd.service").read_text()
    run = (REPO / "runit" / "chariotd" / "run").read_text()
    example = (REPO / "runit" / "chariotd" / "conf.example").read_text()
    assert "## Installing on a device" in readme
    assert "ExecStart=/opt/chariotd/bin/chariotd $CHARIOTD_OPTS" in unit
    assert "EnvironmentFile=/etc/default/chariotd" in unit
    assert "/opt/chariotd/bin/chariotd" in readme and "/etc/default/chariotd" in readme
    assert "/etc/default/chariotd" in run
    # StateDirectory=chariotd is /var/lib/chariotd, the layout the README and example use.
    assert "StateDirectory=chariotd" in unit
    assert "--certstore=/var/lib/chariotd/certs" in readme
    assert "--certstore=/var/lib/chariotd/certs" in example
    # The example is plain NAME="value" lines, readable by sh and by EnvironmentFile=.
    for line in example.splitlines():
        assert line.startswith("#") or not line or re.match(r'^[A-Z_]+=("[^"$`\\]*"|\S*)$',
                                                             line), line
