"""Delta of desired against reported (IOT_CORE.md §2.4 rule 8)."""

from __future__ import annotations

from typing import Optional

from chariotd.shadow.values import copy_json, values_equal


def delta(desired: Optional[dict], reported: Optional[dict]) -> dict:
    """Every part of DESIRED that REPORTED does not show.

    Without ``reported`` the delta is the whole of ``desired``. A key missing from
    ``reported`` or with a different value is included with the desired value (arrays
    count as one value); objects on both sides recurse and are kept only when their
    delta is non-empty. Keys only in ``reported`` never appear.
    """
    if not desired:
        return {}
    if reported is None:
        return copy_json(desired)
    result = {}
    for key, wanted in desired.items():
        if key not in reported:
            result[key] = copy_json(wanted)
            continue
        actual = reported[key]
        if isinstance(wanted, dict) and isinstance(actual, dict):
            sub = delta(wanted, actual)
            if sub:
                result[key] = sub
        elif not values_equal(wanted, actual):
            result[key] = copy_json(wanted)
    return result
