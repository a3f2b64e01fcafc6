"""Fixtures for the service definition tests."""

from __future__ import annotations

import sys

import pytest

from chariotd.services import jsengine


@pytest.fixture
def no_engine(monkeypatch):
    """As on a device without `chariotd[js]`: importing the JavaScript engine fails."""
    monkeypatch.setitem(sys.modules, jsengine.ENGINE_MODULE, None)
    monkeypatch.setattr(jsengine, "_engine", None)
