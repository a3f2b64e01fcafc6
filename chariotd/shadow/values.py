"""JSON value helpers shared by merge, delta and validation."""

from __future__ import annotations

from typing import Any

# The one depth limit: a value (a service's configuration, a message payload, any
# JSON read from outside) nests at most MAX_DEPTH containers, objects and arrays
# counted as `deeper_than` counts them. Every format's writer refuses a deeper value
# and every reader refuses (JSON) or cannot produce (SHELL) one, so whatever is
# written is read back. AWS holds a shadow to 6-8 levels (IOT_CORE.md 2.7); 32 is
# far above any real configuration and far below Python's recursion limit.
MAX_DEPTH = 32

# A document that carries such a value around it adds levels: a shadow document
# wraps a service's value in `state.desired.KEY`, its metadata mirrors it with a
# `{"timestamp"}` object at each leaf (`metadata.desired.KEY...{timestamp}`: 4 more);
# a message file holds its payload under `payload` (1 more). Readers of those
# documents allow MAX_DEPTH + ENVELOPE_DEPTH, and the value inside is then held to
# MAX_DEPTH by the writer it reaches (a refused change, logged).
ENVELOPE_DEPTH = 4


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def values_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values as the shadow service compares them.

    Numbers compare numerically (1 == 1.0); booleans are not numbers (true != 1);
    arrays compare element by element, objects key by key.
    """
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if _is_number(a) or _is_number(b):
        return False
    return type(a) is type(b) and a == b


def deeper_than(value: Any, limit: int) -> bool:
    """True when VALUE nests more than LIMIT containers (objects and arrays count).

    A scalar has depth 0, ``{}`` or ``[]`` depth 1, ``{"a": {}}`` depth 2. The walk
    stops as soon as the limit is passed, so hostile nesting costs little.
    """
    if isinstance(value, dict):
        children = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    if limit <= 0:
        return True
    return any(deeper_than(child, limit - 1) for child in children)


def has_null_in_array(value: Any, inside_array: bool = False) -> bool:
    """True when a null sits anywhere inside an array (objects inside arrays included)."""
    if value is None:
        return inside_array
    if isinstance(value, dict):
        return any(has_null_in_array(v, inside_array) for v in value.values())
    if isinstance(value, list):
        return any(has_null_in_array(v, True) for v in value)
    return False


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (faster than copy.deepcopy for plain JSON)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value
