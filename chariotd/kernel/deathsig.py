"""PR_SET_PDEATHSIG: a child process asks for SIGTERM when its parent dies. Used by the
roles (right after the supervisor's fork) and by the tunnel proxy (between fork and exec,
through chariotd/kernel/spawn.py). A bonus only: each has another way to notice its parent gone.
"""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1
_prctl = None


def _find_prctl():
    global _prctl
    if _prctl is None:
        try:
            _prctl = ctypes.CDLL(None).prctl
        except (OSError, AttributeError):
            _prctl = False
    return _prctl


def die_with_parent() -> None:
    """SIGTERM to this process when its parent dies; nothing where prctl is missing."""
    prctl = _find_prctl()
    if prctl:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def prepare() -> None:
    """Look prctl up now, so that a child between fork and exec only calls it."""
    _find_prctl()
