"""JSON: the service's value as JSON text.

Layout: members in the order the value holds them (the shadow's order, not
sorted), 2-space indent, `": "` after keys, non-ASCII characters written as they
are (UTF-8, not `\\u` escapes), one trailing newline. Floats with an integral
value are written as integers (`1`, not `1.0`), as JavaScript prints them.

`null` cannot be stored: the shadow uses it to delete a key. Object members
whose value is null are left out (as the original chariotd did); a null value
at the top level is refused. NaN and Infinity are not JSON and are refused both
ways, and so are lone surrogates (they cannot be written as UTF-8).
"""

from __future__ import annotations

import json as _json
import math

from chariotd.shadow.values import deeper_than

from .errors import FormatError

NAME = "JSON"

# A device shadow nests at most 6 to 8 levels (IOT_CORE.md section 2.7); a value
# nested deeper than this is refused, so that no hostile file can exhaust the stack
# of the code that walks the value afterwards.
MAX_DEPTH = 32

# JavaScript prints integral numbers below 1e21 without a fraction or exponent.
_JS_PLAIN_INTEGER_LIMIT = 1e21


def _refuse_constant(name: str) -> object:
    raise FormatError(f"JSON: {name} is not a JSON number")


def parse(text: str) -> object:
    """Return the value in TEXT; FormatError if TEXT is not one JSON document."""
    if not isinstance(text, str):
        raise FormatError(f"JSON reads text, not {type(text).__name__}")
    try:
        value = _json.loads(text, parse_constant=_refuse_constant)
    except _json.JSONDecodeError as e:
        raise FormatError(f"JSON: {e}") from None
    except ValueError as e:  # an integer of more digits than Python converts
        raise FormatError(f"JSON: {e}") from None
    except RecursionError:
        raise FormatError("JSON: nested too deeply") from None
    if deeper_than(value, MAX_DEPTH):
        raise FormatError(f"JSON: nested deeper than {MAX_DEPTH} levels")
    return value


def _prepare(value: object, where: str) -> object:
    """A copy of VALUE without null members and with integral floats as ints."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FormatError(f"JSON: {where} is {value!r}, which JSON cannot hold")
        if value.is_integer() and abs(value) < _JS_PLAIN_INTEGER_LIMIT:
            return int(value)
        return value
    if isinstance(value, dict):
        out = {}
        for key, member in value.items():
            if not isinstance(key, str):
                raise FormatError(f"JSON: key {key!r} in {where} is not a string")
            if member is not None:
                out[key] = _prepare(member, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_prepare(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise FormatError(f"JSON: {where} is a {type(value).__name__}, which JSON cannot hold")


def stringify(value: object) -> str:
    """VALUE as JSON text in the layout described in the module docstring."""
    if value is None:
        raise FormatError("JSON: the value is null, which the shadow uses for deletion")
    text = _json.dumps(_prepare(value, "value"), indent=2, ensure_ascii=False,
                       allow_nan=False) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError("JSON: the value holds a lone surrogate, not writable as UTF-8") from None
    return text
