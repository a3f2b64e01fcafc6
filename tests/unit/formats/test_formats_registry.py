from __future__ import annotations

import pytest

import chariotd.formats as formats


def test_get_returns_each_module():
    assert formats.get("JSON") is formats.json
    assert formats.get("SHELL") is formats.shell
    assert formats.get("PLAINTEXT") is formats.plaintext
    assert formats.NAMES == ("JSON", "SHELL", "PLAINTEXT")
    for name in formats.NAMES:
        module = formats.get(name)
        assert callable(module.parse) and callable(module.stringify)


@pytest.mark.parametrize("name", ["json", "Shell", "TEXT", "", None, "JSON "])
def test_unknown_names_are_refused_clearly(name):
    with pytest.raises(formats.FormatError,
                       match=r"unknown format .*expected one of JSON, SHELL, PLAINTEXT"):
        formats.get(name)
