"""Merge a patch into a shadow section (IOT_CORE.md §2.4 rules 1-3 and 6)."""

from __future__ import annotations

from chariotd.shadow.values import copy_json


def merge(base: dict, patch: dict) -> dict:
    """Return BASE with PATCH merged in; neither argument is modified.

    - objects merge recursively;
    - scalars and arrays replace the old value whole (part of an array cannot be updated);
    - ``"key": null`` deletes the key at any depth;
    - an object left empty (or added empty) is not kept, so ``{"n": {"x": null}}``
      removes ``n`` when ``x`` was its only key.
    """
    result = dict(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            old = result.get(key)
            merged = merge(old if isinstance(old, dict) else {}, value)
            if merged:
                result[key] = merged
            else:
                result.pop(key, None)
        else:
            result[key] = copy_json(value)
    return result


def merge_state(state: dict, patch_state: dict) -> dict:
    """Merge an update's ``state`` into a document's state ({desired, reported}).

    A section set to null is removed whole; a section left empty is dropped.
    """
    result = dict(state)
    for section in ("desired", "reported"):
        if section not in patch_state:
            continue
        patch = patch_state[section]
        merged = {} if patch is None else merge(result.get(section, {}), patch)
        if merged:
            result[section] = merged
        else:
            result.pop(section, None)
    return result
