"""Installation: the sdist holds the whole project; wheels built once into a folder
install with no index and no compiler, without the extras, man page included; the wheel
in fresh virtualenvs on Python 3.9 and 3.11 (the 3.9 one then runs the real tree against
a broker); `python -m chariotd`; the manual page up to date with --help."""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from chariotd import __version__
from support import Daemon, end_process_group, wait_until

REPO = Path(__file__).resolve().parents[2]
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


def pyenv_python(version: str):
    found = sorted(glob.glob(str(PYENV / f"{version}.*" / "bin" / "python")))
    return found[-1] if found else None


def test_manpage_is_current():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "manpage"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


class ModuleDaemon(Daemon):
    """The tree started as `python -m chariotd`."""

    def start(self) -> "ModuleDaemon":
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "chariotd", *self.args],
                                        stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        return self


def test_python_m_chariotd_is_the_chariotd_command(base_args, tmp_path):
    version = subprocess.run([sys.executable, "-m", "chariotd", "--version"],
                             capture_output=True, text=True, timeout=30)
    assert (version.returncode, version.stdout) == (0, f"chariotd {__version__}\n")
    daemon = ModuleDaemon(base_args, tmp_path).start()
    try:
        daemon.wait_connected()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    """The sdist, built as a packager would (an isolated build with `build`)."""
    out = tmp_path_factory.mktemp("sdist")
    result = subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(out),
                             str(REPO)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = out.glob("chariotd-*.tar.gz")
    return path


def test_sdist_holds_the_whole_project(sdist):
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        pkg_info = tar.extractfile(f"chariotd-{__version__}/PKG-INFO").read().decode()
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "docs", "systemd", "runit",
                              "tests", "scripts", "bench", "man", "chariotd"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert len(tracked) > 100
    assert sorted(set(tracked) - names) == []
    assert {"LICENSE", "README.md", "pyproject.toml", "man/chariotd.8"} <= names
    assert not [name for name in names if name.endswith((".pem", ".key", ".crt", ".pyc"))]
    assert "License-Expression: MIT" in pkg_info and "License-File: LICENSE" in pkg_info
    assert "Classifier: Operating System :: POSIX :: Linux" in pkg_info


def test_offline_install_from_a_folder_of_wheels(sdist, base_args, tmp_path):
    """docs/install.md's offline path for the host's architecture: wheels for chariotd
    and its dependencies built once into a folder, then installed with no index."""
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(wheels),
                            str(sdist)], capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stderr
    names = sorted(p.name.split("-")[0].lower() for p in wheels.glob("*.whl"))
    assert "chariotd" in names and "pyzmq" in names and "cryptography" not in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    offline = {k: v for k, v in os.environ.items()
               if not k.startswith(("PIP_", "PYTHON"))}
    offline["PIP_CONFIG_FILE"] = os.devnull  # no index from a configuration file either
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                                "--disable-pip-version-check", "--no-index",
                                "--find-links", str(wheels), "chariotd"],
                               capture_output=True, text=True, timeout=180, env=offline)
    assert installed.returncode == 0, installed.stderr

    def run(*args):
        return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], capture_output=True,
                              text=True, timeout=60, env=offline, cwd=tmp_path)

    assert run("chariotd", "--version").stdout == f"chariotd {__version__}\n"
    # The device package leaves cryptography out: the parts that need it say which extra.
    assert run("python", "-c", "import cryptography").returncode == 1
    sim = run("chariotd-sim", "--help")
    assert (sim.returncode, sim.stdout, sim.stderr) == (
        1, "", "chariotd-sim: needs cryptography: pip install 'chariotd[sim]'\n")
    fleetprov = run("chariotd", *base_args, f"--fleetprov={tmp_path / 'fleetprov.json'}")
    assert (fleetprov.returncode, fleetprov.stderr) == (
        2, "chariotd: error: --fleetprov: fleet provisioning needs cryptography: "
           "pip install 'chariotd[fleetprov]'\n")
    # The manual page lands in the virtualenv, where man finds it from PATH.
    page = venv / "share" / "man" / "man8" / "chariotd.8"
    assert page.read_text() == (REPO / "man" / "chariotd.8").read_text()
    where = subprocess.run(["man", "-w", "chariotd"], capture_output=True, text=True,
                           timeout=30, env=dict(offline, PATH=f"{venv / 'bin'}:/usr/bin:/bin",
                                                MANPATH=""))
    assert where.stdout.strip() == str(page), where.stderr


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
        end_process_group(process)


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
