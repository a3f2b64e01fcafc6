"""Per-leaf metadata: each leaf of the state replaced by {"timestamp": t} (IOT_CORE.md §2.3).

Arrays get one entry per element. Metadata always mirrors the state tree it describes.
"""

from __future__ import annotations

from typing import Any


def stamp(value: Any, timestamp: int) -> Any:
    """The metadata of VALUE written at TIMESTAMP; a null leaf is stamped too (for echoes)."""
    if isinstance(value, dict):
        return {k: stamp(v, timestamp) for k, v in value.items()}
    if isinstance(value, list):
        return [stamp(v, timestamp) for v in value]
    return {"timestamp": timestamp}


def carry(old_value: Any, old_meta: Any, patch: Any, new_value: Any, timestamp: int) -> Any:
    """Metadata of NEW_VALUE after PATCH was merged into OLD_VALUE (whose metadata is OLD_META).

    Untouched fields keep their timestamps; everything the patch wrote gets TIMESTAMP.
    """
    if isinstance(patch, dict) and isinstance(new_value, dict) and isinstance(old_value, dict):
        old_meta = old_meta if isinstance(old_meta, dict) else {}
        result = {}
        for key, value in new_value.items():
            if key in patch:
                result[key] = carry(old_value.get(key), old_meta.get(key), patch[key], value,
                                    timestamp)
            elif key in old_meta:
                result[key] = old_meta[key]
            else:  # not expected: metadata missing for an untouched key
                result[key] = stamp(value, timestamp)
        return result
    return stamp(new_value, timestamp)


def carry_state(old_state: dict, old_meta: dict, patch_state: dict, new_state: dict,
                timestamp: int) -> dict:
    """Metadata {desired, reported} of NEW_STATE after an update's state PATCH_STATE."""
    result = {}
    for section, value in new_state.items():
        patch = patch_state.get(section) if section in patch_state else _UNTOUCHED
        if patch is _UNTOUCHED:
            result[section] = old_meta.get(section, stamp(value, timestamp))
        else:
            result[section] = carry(old_state.get(section, {}), old_meta.get(section, {}),
                                    patch, value, timestamp)
    return result


def select(desired_meta: dict, delta: dict) -> dict:
    """The part of the desired metadata that describes DELTA's keys."""
    result = {}
    for key, value in delta.items():
        meta = desired_meta.get(key)
        if isinstance(value, dict) and isinstance(meta, dict):
            result[key] = select(meta, value)
        elif meta is not None:
            result[key] = meta
    return result


_UNTOUCHED = object()
