"""Device-side patch logic (pure): what a service's configuration becomes when a
change arrives, and what must be reported so the shadow shows it.

- `normalise`: the reserved value "DELETE" (and, when asked, an empty array) becomes
  null, the shadow's deletion marker, at any depth.
- `apply`: a patch applied to a configuration that may be an object, a scalar or absent.
- `diff`: the update patch that turns one reported value into another (null removes).
- `combine`: two update patches folded into one, the later winning, nulls kept
  (or NO_CHANGE when one patch cannot say what the two do).
"""

from __future__ import annotations

from typing import Any

from chariotd.shadow.merge import merge
from chariotd.shadow.values import copy_json, values_equal

DELETE = "DELETE"


def normalise(value: Any, empty_array_deletes: bool = False) -> Any:
    if value == DELETE or (empty_array_deletes and value == []):
        return None
    if isinstance(value, dict):
        return {k: normalise(v, empty_array_deletes) for k, v in value.items()}
    return value


def strip_nulls(value: Any) -> Any:
    """VALUE without null members (a null member means 'absent'); empty objects stay."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    return value


def apply(base: Any, patch: Any) -> Any:
    """BASE with PATCH applied as the shadow would: objects merge, anything else
    replaces, null deletes. Neither argument is modified."""
    if patch is None:
        return None
    if isinstance(patch, dict) and isinstance(base, dict):
        return merge(base, patch)
    return strip_nulls(copy_json(patch))


def diff(old: Any, new: Any) -> Any:
    """The patch that turns OLD into NEW when merged, or NO_CHANGE.

    Objects differ key by key (a key gone from NEW becomes null); any other change
    replaces the whole value (None when NEW is absent).
    """
    if isinstance(old, dict) and isinstance(new, dict):
        patch = {}
        for key in old:
            if key not in new:
                patch[key] = None
        for key, value in new.items():
            if key not in old:
                patch[key] = copy_json(value)
                continue
            sub = diff(old[key], value)
            if sub is not NO_CHANGE:
                patch[key] = sub
        return patch if patch else NO_CHANGE
    if old is None and new is None:
        return NO_CHANGE
    if isinstance(old, dict) != isinstance(new, dict) or not values_equal(old, new):
        return copy_json(new)  # None when NEW is absent: the key is removed
    return NO_CHANGE


class _NoChange:
    def __repr__(self) -> str:
        return "NO_CHANGE"


NO_CHANGE = _NoChange()


def combine(first: Any, second: Any) -> Any:
    """One patch equivalent to applying FIRST then SECOND (nulls are kept), or
    NO_CHANGE when no single patch can say it: an object patch after a non-object
    value would merge into what was there before FIRST replaced it."""
    if isinstance(first, dict) and isinstance(second, dict):
        result = dict(first)
        for key, value in second.items():
            if key not in first:
                result[key] = value
                continue
            if isinstance(value, dict) and not isinstance(first[key], dict):
                return NO_CHANGE
            combined = combine(first[key], value)
            if combined is NO_CHANGE:
                return NO_CHANGE
            result[key] = combined
        return result
    if isinstance(second, dict) and first is not None and not isinstance(first, dict):
        return NO_CHANGE
    return second
