"""Letterheads (pure): the JSON object a message is merged on top of right before it
is published, from `--letterhead-file` or from the output of `--letterhead-generator`.

Merging is deep: where both sides hold an object the two are merged key by key, and
everywhere else the message's value wins. A letterhead cannot set `priority` or
`priority_slot` (the backlog was ordered before it was loaded): those keys are dropped.
The generator sees the message through its environment (`generator_environment`), on
top of the environment every child gets (chariotd/kernel/spawn.py's allowlist).
"""

from __future__ import annotations

from typing import Dict, Optional

from chariotd.watchers.message_file import BadMessage, Number, Slot, decode_json

IGNORED_KEYS = ("priority", "priority_slot")
MAX_SLOT = 256  # characters of a priority_slot a generator can be told


class BadLetterhead(ValueError):
    pass


def parse_letterhead(data: bytes) -> dict:
    """A letterhead from its JSON bytes (priority keys dropped), or raise BadLetterhead."""
    try:
        letterhead = decode_json(data)
    except BadMessage as error:
        raise BadLetterhead(str(error)) from None
    if not isinstance(letterhead, dict):
        raise BadLetterhead(f"a letterhead is a JSON object, not {type(letterhead).__name__}")
    for key in IGNORED_KEYS:
        letterhead.pop(key, None)
    return letterhead


def merge(letterhead: dict, message: dict) -> dict:
    """MESSAGE merged on top of LETTERHEAD (a new object; neither is changed)."""
    merged = dict(letterhead)
    for key, value in message.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = merge(below, value)
        else:
            merged[key] = value
    return merged


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _slot_text(slot: Optional[Slot]) -> str:
    """The slot as a generator sees it; a slot that cannot be told (a NUL, a control
    character, a lone surrogate, too long) is the message's fault: BadMessage."""
    text = _text(slot)
    if len(text) > MAX_SLOT or not text.isprintable():
        raise BadMessage(f"priority_slot must be at most {MAX_SLOT} printable characters "
                         "to be given to the letterhead generator")
    return text


def generator_environment(*, topic: str, path: str, mtime_ns: int,
                          priority: Optional[Number], slot: Optional[Slot],
                          was_prioritised: bool) -> Dict[str, str]:
    """What a letterhead generator run is told of its message (EXTENSIONS A):

    MESSAGE_TOPIC            the topic after prefix and suffix
    MESSAGE_FILENAME         the file's path in new/
    MESSAGE_TIMESTAMP        its mtime, ms since the epoch with the fraction (1712.345678)
    MESSAGE_TIMESTAMP_S      its mtime, whole seconds
    MESSAGE_PRIORITY         its priority; 1 for a slot message with none; else empty
    MESSAGE_PRIORITY_SLOT    its slot, or empty
    MESSAGE_WAS_PRIORITISED  1 when it came from the priority queue, else empty

    added to the environment every child gets (PATH, LANG, TZ...: chariotd/kernel/spawn.py).
    Raises BadMessage for a slot that cannot be told.
    """
    if priority is None and slot is not None:
        priority = 1
    return dict(
        MESSAGE_TOPIC=topic,
        MESSAGE_FILENAME=path,
        MESSAGE_TIMESTAMP=f"{mtime_ns // 10**6}.{mtime_ns % 10**6:06d}",
        MESSAGE_TIMESTAMP_S=str(mtime_ns // 10**9),
        MESSAGE_PRIORITY=_text(priority),
        MESSAGE_PRIORITY_SLOT=_slot_text(slot),
        MESSAGE_WAS_PRIORITISED="1" if was_prioritised else "",
    )
