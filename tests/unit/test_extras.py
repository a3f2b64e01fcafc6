"""Optional parts: what each extra brings, and the one line a missing extra gives."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from chariotd.kernel import extras
from chariotd.sim import entry

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_installed_extra_is_not_missing():
    assert extras.missing("sim") is None and extras.missing("fleetprov") is None


def test_missing_extra_names_the_module_and_the_pip_command(monkeypatch):
    monkeypatch.setitem(extras.EXTRAS, "sim", ("cryptography", "no_such_module_here"))
    assert extras.missing("sim") == "needs no_such_module_here: pip install 'chariotd[sim]'"


def test_chariotd_sim_without_its_extra_says_which_to_install(monkeypatch, capsys):
    monkeypatch.setitem(extras.EXTRAS, "sim", ("no_such_module_here",))
    assert entry.main() == 1
    assert capsys.readouterr().err == (
        "chariotd-sim: needs no_such_module_here: pip install 'chariotd[sim]'\n")


def test_the_device_package_leaves_cryptography_to_the_extras():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("cryptography")]
    optional = project["optional-dependencies"]
    for extra, modules in extras.EXTRAS.items():
        assert [d.split(">")[0] for d in optional[extra]] == list(modules), extra
    assert project["scripts"]["chariotd-sim"] == "chariotd.sim.entry:main"


@pytest.mark.parametrize("extra", sorted(extras.EXTRAS))
def test_the_test_extra_pulls_every_extra(extra):
    test = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]["test"]
    assert any(d.startswith("chariotd[") and extra in d for d in test)
