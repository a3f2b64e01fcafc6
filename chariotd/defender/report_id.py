"""report_id: strictly increasing per thing, across restarts (IOT_CORE.md 8.1).

AWS wants a positive integer that increases with every report of a thing and
recommends an epoch timestamp. Chosen: wall-clock milliseconds, but never below the
last id + 1, the last id kept durably in a state file (written with
fsutil.write_file_atomic before the id is handed out). So ids stay increasing when the
clock steps back (a device without a battery-backed clock boots in 1970 until NTP), when
two reports fall in one millisecond, and across restarts and power cuts; and while the
clock is right they read as the time of the report, as AWS's own client sends them.

A state file that cannot be read or holds no valid id is logged once and counts as no
id yet (the clock then decides). An id that cannot be saved is never handed out:
`next_id` raises OSError and that report is not sent.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

from chariotd.kernel import safe_open
from chariotd.kernel.fsutil import write_file_atomic

log = logging.getLogger(__name__)

MAX_REPORT_ID = 2 ** 63 - 1  # AWS takes a long; above it there is no next id
MAX_STATE_BYTES = 64


def parse_state(data: bytes) -> int:
    """The last id in a state file's DATA (decimal digits and a newline); ValueError."""
    text = data.decode("ascii").strip()
    if not text.isdigit() or len(text) > 19:
        raise ValueError("not a report id")
    value = int(text)
    if not 0 < value <= MAX_REPORT_ID:
        raise ValueError("out of range")
    return value


def next_after(last: int, now_ms: int) -> int:
    """The id after LAST at NOW_MS wall-clock milliseconds (pure)."""
    value = max(now_ms, last + 1, 1)
    if value > MAX_REPORT_ID:
        raise OverflowError("report_id would pass 2**63-1")
    return value


class ReportIds:
    """Hands out report ids for one thing, remembering the last in STATE_PATH."""

    def __init__(self, state_path, clock: Callable[[], float] = time.time):
        self._path = state_path
        self._clock = clock
        self.last = self._load()

    def _load(self) -> int:
        try:
            data, _ = safe_open.read_file(self._path, MAX_STATE_BYTES, single_link=True)
            return parse_state(data)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            log.warning("defender report id state %s unusable (%s); ids start from the clock",
                        self._path, reason)
            return 0

    def next_id(self) -> int:
        value = next_after(self.last, int(self._clock() * 1000))
        write_file_atomic(self._path, b"%d\n" % value, mode=0o600)
        self.last = value
        return value

    def peek(self) -> Optional[int]:
        return self.last or None
