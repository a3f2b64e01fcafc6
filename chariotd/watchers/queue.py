"""The backlog of a messages directory (pure: names, mtimes and priority fields in,
entries out; no I/O).

Two heaps. Prioritised entries go out first, lowest `priority` first; everything else
waits in the ordinary backlog, in the directory's `message-order`:

    lexical          by file name
    reverse-lexical  by file name, descending
    oldest-first     by mtime, then file name
    newest-first     by mtime descending, then file name

Ties between equal priorities follow the same order.

An entry with a numeric `priority` and no slot is always prioritised. An entry with a
`priority_slot` is prioritised (with its priority, or 1 when it has none) only while it
is the newest waiting entry of its slot, "newest" meaning the greater (mtime, name). When
a newer entry of the slot arrives, the older is demoted to the ordinary backlog for good:
it stays there even when the newer one leaves. So a slot has at most one prioritised
entry, and that one is its newest waiting entry.

Each name waits at most once: adding a waiting name replaces its entry. Removal is lazy
(stale heap items are skipped, and the heaps are compacted when stale items outnumber
live ones), so every operation is O(log n).

Memory: a backlog of 100,000 files at start is mostly plain files, so a plain entry is
kept as little as possible: its name in a dict (with its mtime, or 0 when the order
does not use it) and its order key in the heap, which in lexical order is the name
itself. An `Entry` object is made only for files with priority fields, and for the
one `pop` hands out.
"""

from __future__ import annotations

import bisect
import heapq
from typing import Callable, Dict, List, Optional, Tuple, Union

Number = Union[int, float]
Slot = Union[str, int, float]

ORDERS = ("lexical", "reverse-lexical", "newest-first", "oldest-first")
SLOT_PRIORITY = 1  # the priority of a slot's newest entry that names none


class Entry:
    """One waiting file: what the handler learned when it arrived."""
    __slots__ = ("name", "mtime_ns", "priority", "slot", "prioritised")

    def __init__(self, name: str, mtime_ns: int = 0, priority: Optional[Number] = None,
                 slot: Optional[Slot] = None, prioritised: bool = False):
        self.name = name
        self.mtime_ns = mtime_ns
        self.priority = priority
        self.slot = slot
        self.prioritised = prioritised  # set by the backlog: which queue it waits in

    @property
    def plain(self) -> bool:
        return self.priority is None and self.slot is None

    def __lt__(self, other: "Entry") -> bool:
        return False  # only ever compared after equal keys: any order will do

    def __repr__(self) -> str:
        return (f"Entry({self.name!r}, {self.mtime_ns}, priority={self.priority!r}, "
                f"slot={self.slot!r})")


class _Descending:
    """A name that sorts backwards (for reverse-lexical)."""
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __lt__(self, other: "_Descending") -> bool:
        return self.name > other.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.name == other.name


# The heap item of an ordinary entry is its order key; (name, mtime_ns) -> key.
_ORDER_KEYS: Dict[str, Callable[[str, int], object]] = {
    "lexical": lambda name, mtime_ns: name,
    "reverse-lexical": lambda name, mtime_ns: _Descending(name),
    "oldest-first": lambda name, mtime_ns: (mtime_ns, name),
    "newest-first": lambda name, mtime_ns: (-mtime_ns, name),
}
_TIME_ORDERS = ("oldest-first", "newest-first")


def _name_of(key) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, _Descending):
        return key.name
    return key[1]


def _slot_key(slot: Slot):
    # "1" and 1 are different slots; 1 and 1.0 are the same one.
    return (isinstance(slot, str), slot)


class Backlog:
    def __init__(self, order: str = "lexical"):
        if order not in _ORDER_KEYS:
            raise ValueError(f"message order must be one of {', '.join(ORDERS)}")
        self._order_key = _ORDER_KEYS[order]
        self._keep_mtime = order in _TIME_ORDERS
        self._plain: Dict[str, int] = {}          # name -> mtime_ns (0 when unused)
        self._special: Dict[str, Entry] = {}      # entries with priority fields
        self._ordinary: List[object] = []         # order keys
        self._prioritised: List[tuple] = []       # (priority, order key, entry)
        self._slot_ages: Dict[object, List[Tuple[int, str]]] = {}  # sorted, waiting only
        self._slot_head: Dict[object, Entry] = {}  # the prioritised entry of each slot

    def __len__(self) -> int:
        return len(self._plain) + len(self._special)

    def __contains__(self, name: str) -> bool:
        return name in self._plain or name in self._special

    def get(self, name: str) -> Optional[Entry]:
        if name in self._plain:
            return Entry(name, self._plain[name])
        return self._special.get(name)

    def names(self) -> List[str]:
        return [*self._plain, *self._special]

    def prioritised_names(self) -> List[str]:
        return [e.name for e in self._special.values() if e.prioritised]

    # -- adding -----------------------------------------------------------------------
    def add(self, entry: Entry) -> None:
        """Queue ENTRY (replacing a waiting entry of the same name)."""
        self.discard(entry.name)
        if entry.plain:
            mtime_ns = entry.mtime_ns if self._keep_mtime else 0
            self._plain[entry.name] = mtime_ns
            heapq.heappush(self._ordinary, self._order_key(entry.name, mtime_ns))
            self._maybe_compact()
            return
        self._special[entry.name] = entry
        if entry.slot is not None:
            self._add_to_slot(entry)
        else:
            self._push(entry, prioritised=True)

    def _add_to_slot(self, entry: Entry) -> None:
        key = _slot_key(entry.slot)
        ages = self._slot_ages.setdefault(key, [])
        age = (entry.mtime_ns, entry.name)
        newest = ages[-1] if ages else None
        bisect.insort(ages, age)
        if newest is not None and age < newest:
            self._push(entry, prioritised=False)  # an older one of the slot
            return
        head = self._slot_head.get(key)
        if head is not None:
            self._push(head, prioritised=False)  # demoted for good
        self._slot_head[key] = entry
        self._push(entry, prioritised=True)

    def _push(self, entry: Entry, prioritised: bool) -> None:
        entry.prioritised = prioritised
        key = self._order_key(entry.name, entry.mtime_ns)
        if prioritised:
            priority = SLOT_PRIORITY if entry.priority is None else entry.priority
            heapq.heappush(self._prioritised, (priority, key, entry))
        else:
            heapq.heappush(self._ordinary, key)
        self._maybe_compact()

    # -- taking -----------------------------------------------------------------------
    def _live_prioritised(self, item: tuple) -> bool:
        entry = item[2]
        return self._special.get(entry.name) is entry and entry.prioritised

    def _live_ordinary(self, key) -> Optional[Entry]:
        """The entry KEY stands for, if it still waits in the ordinary backlog."""
        name = _name_of(key)
        if name in self._plain:
            mtime_ns = self._plain[name]
            if not self._keep_mtime or self._order_key(name, mtime_ns) == key:
                return Entry(name, mtime_ns)
            return None
        entry = self._special.get(name)
        if entry is None or entry.prioritised:
            return None
        if self._keep_mtime and self._order_key(name, entry.mtime_ns) != key:
            return None
        return entry

    def pop(self) -> Optional[Entry]:
        """The next entry to publish (its `prioritised` says which queue it came
        from), or None when nothing waits."""
        while self._prioritised:
            item = heapq.heappop(self._prioritised)
            if self._live_prioritised(item):
                self._remove(item[2])
                return item[2]
        while self._ordinary:
            entry = self._live_ordinary(heapq.heappop(self._ordinary))
            if entry is not None:
                self._remove(entry)
                return entry
        return None

    def take(self, name: str) -> Optional[Entry]:
        """Remove the waiting entry NAME out of turn and return it (None if not waiting)."""
        entry = self.get(name)
        if entry is not None:
            self._remove(entry)
        return entry

    def discard(self, name: str) -> None:
        if self._plain.pop(name, None) is None:
            entry = self._special.get(name)
            if entry is not None:
                self._remove(entry)  # its heap item is skipped when reached

    def _remove(self, entry: Entry) -> None:
        if self._plain.pop(entry.name, None) is not None:
            return
        del self._special[entry.name]
        if entry.slot is None:
            return
        key = _slot_key(entry.slot)
        ages = self._slot_ages[key]
        del ages[bisect.bisect_left(ages, (entry.mtime_ns, entry.name))]
        if not ages:
            del self._slot_ages[key]
        if self._slot_head.get(key) is entry:
            del self._slot_head[key]

    def _maybe_compact(self) -> None:
        if len(self._ordinary) + len(self._prioritised) <= 2 * len(self) + 1024:
            return
        seen = set()
        ordinary = []
        for key in self._ordinary:
            name = _name_of(key)
            if name not in seen and self._live_ordinary(key) is not None:
                seen.add(name)
                ordinary.append(key)
        self._ordinary[:] = ordinary
        heapq.heapify(self._ordinary)
        self._prioritised[:] = [item for item in self._prioritised
                                if self._live_prioritised(item)]
        heapq.heapify(self._prioritised)
