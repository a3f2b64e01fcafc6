"""The simulator's log: one line per event on stderr, prefixed ``sim:``. Never secrets."""

from __future__ import annotations

import sys


def log(message: str) -> None:
    print(f"sim: {message}", file=sys.stderr, flush=True)
