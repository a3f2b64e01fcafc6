"""The simulator's log: one line per event on stderr, prefixed ``sim:``. Never secrets.

Topics, client ids and payload excerpts come from clients, so control characters
are escaped as in the daemon's own log (`chariotd.kernel.log.escape_controls`).
"""

from __future__ import annotations

import sys

from chariotd.kernel.log import escape_controls


def log(message: str) -> None:
    print(f"sim: {escape_controls(message)}", file=sys.stderr, flush=True)
