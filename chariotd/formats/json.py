"""JSON: the service's value as JSON text.

Layout: members in the order the value holds them (the shadow's order, not
sorted), 2-space indent, `": "` after keys, non-ASCII characters written as they
are (UTF-8, not `\\u` escapes), one trailing newline. Floats with an integral
value are written as integers (`1`, not `1.0`), as JavaScript prints them.

At most MAX_DEPTH levels (chariotd.shadow.values), both ways: what `stringify`
writes, `parse` reads back, and `load` is the one loader of outside JSON.

`null` cannot be stored: the shadow uses it to delete a key. Object members
whose value is null are left out (as the original chariotd did); a null value
at the top level is refused. NaN and Infinity are not JSON and are refused both
ways, and so are lone surrogates (they cannot be written as UTF-8).
"""

from __future__ import annotations

import json as _json
import math

from typing import Union

from chariotd.shadow.values import ENVELOPE_DEPTH, MAX_DEPTH, deeper_than

from .errors import FormatError

NAME = "JSON"

__all__ = ["ENVELOPE_DEPTH", "MAX_DEPTH", "NAME", "load", "parse", "stringify"]

# JavaScript prints integral numbers below 1e21 without a fraction or exponent.
_JS_PLAIN_INTEGER_LIMIT = 1e21


def _refuse_constant(name: str) -> object:
    raise FormatError(f"{name} is not a JSON number")


# One decoder for every call (json.loads with options would build one per call).
_DECODER = _json.JSONDecoder(parse_constant=_refuse_constant)


def load(data: Union[bytes, str], envelope: int = 0) -> object:
    """The one loader of JSON from outside (files, the cloud, commands' output).

    DATA: UTF-8 bytes or text holding one strict JSON document (no NaN or Infinity).
    The value nests at most MAX_DEPTH levels, plus ENVELOPE levels for a document
    that carries a value inside it (ENVELOPE_DEPTH for a shadow document, 1 for a
    message file). Raises FormatError with a one-line reason without a prefix
    (callers say what they were reading): never RecursionError or another ValueError.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise FormatError(f"not UTF-8 text (byte {error.start})") from None
    elif not isinstance(data, str):
        raise FormatError(f"JSON is read from text, not {type(data).__name__}")
    try:
        value = _DECODER.decode(data)
    except FormatError:  # NaN or Infinity
        raise
    except ValueError as error:  # JSONDecodeError, or more digits than Python converts
        raise FormatError(str(error)) from None
    except RecursionError:
        raise FormatError("nested too deeply") from None
    limit = MAX_DEPTH + envelope
    if deeper_than(value, limit):
        raise FormatError(f"nested deeper than {limit} levels")
    return value


def parse(text: str) -> object:
    """Return the value in TEXT; FormatError if TEXT is not one JSON document of at
    most MAX_DEPTH levels."""
    if not isinstance(text, str):
        raise FormatError(f"JSON reads text, not {type(text).__name__}")
    try:
        return load(text)
    except FormatError as error:
        raise FormatError(f"JSON: {error}") from None


def read_held(text: str) -> object:
    """What TEXT holds, compared with `held` of a value (by `values_equal`)."""
    return parse(text)


def held(value: object) -> object:
    """What a JSON outfile holds for VALUE, as `parse` reads it back (nulls left out,
    integral floats as ints); compared with `values_equal`. FormatError when JSON
    cannot hold VALUE."""
    if value is None:
        raise FormatError("JSON: the value is null, which the shadow uses for deletion")
    if deeper_than(value, MAX_DEPTH):
        raise FormatError(f"JSON: the value is nested deeper than {MAX_DEPTH} levels")
    return _prepare(value, "value")


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
    try:
        text = _json.dumps(held(value), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError as error:  # an integer of more digits than Python converts
        raise FormatError(f"JSON: {error}") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError("JSON: the value holds a lone surrogate, not writable as UTF-8") from None
    return text


def kind_of(value: object) -> str:
    """What VALUE is, in JSON's words, for a reason a log line gives ("a string")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if callable(value):
        return "a function"
    return f"a {type(value).__name__}"
