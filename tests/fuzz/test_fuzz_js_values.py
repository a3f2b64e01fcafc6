"""Property: any JSON value goes into a `.js` validate and comes back as JavaScript
sees it (numbers as doubles, NaN-free), or the call is a JSError; never anything else."""

from __future__ import annotations

import math

from hypothesis import given

from chariotd.services import jsengine

from fuzz_values import fuzz_settings, json_values

IDENTITY = jsengine.JSFunction("module.exports = { validate: cfg => cfg };", "/svcs/a.js",
                               "validate")


def as_javascript(value):
    """VALUE as JSON.parse then JSON.stringify leave it: every number a double; one
    too large for a double is Infinity, which JSON writes as null."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, list):
        return [as_javascript(v) for v in value]
    return {k: as_javascript(v) for k, v in value.items()}


@fuzz_settings(200)
@given(json_values)
def test_values_round_trip_through_validate(value):
    try:
        back = IDENTITY(value)
    except jsengine.JSError as error:  # Infinity cannot be sent; nothing else fails
        assert "Out of range float values" in str(error), error
        return
    # JavaScript prints an integral double in full (2e16 as 20000000000000000), which
    # Python reads as an int: compare both as doubles.
    assert as_javascript(back) == as_javascript(value)
