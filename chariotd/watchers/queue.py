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
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from typing import Callable, Dict, List, Optional, Tuple, Union

Number = Union[int, float]
Slot = Union[str, int, float]

ORDERS = ("lexical", "reverse-lexical", "newest-first", "oldest-first")
SLOT_PRIORITY = 1  # the priority of a slot's newest entry that names none


class Entry:
    """One waiting file: what the handler learned when it arrived."""
    __slots__ = ("name", "mtime_ns", "priority", "slot", "ticket", "prioritised")

    def __init__(self, name: str, mtime_ns: int = 0, priority: Optional[Number] = None,
                 slot: Optional[Slot] = None):
        self.name = name
        self.mtime_ns = mtime_ns
        self.priority = priority
        self.slot = slot
        self.ticket: Optional[int] = None   # the live heap item's ticket while waiting
        self.prioritised = False            # which heap that item is in

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


_ORDER_KEYS: Dict[str, Callable[[Entry], tuple]] = {
    "lexical": lambda e: (e.name,),
    "reverse-lexical": lambda e: (_Descending(e.name),),
    "oldest-first": lambda e: (e.mtime_ns, e.name),
    "newest-first": lambda e: (-e.mtime_ns, e.name),
}


def _slot_key(slot: Slot):
    # "1" and 1 are different slots; 1 and 1.0 are the same one.
    return (isinstance(slot, str), slot)


class Backlog:
    def __init__(self, order: str = "lexical"):
        if order not in _ORDER_KEYS:
            raise ValueError(f"message order must be one of {', '.join(ORDERS)}")
        self._order_key = _ORDER_KEYS[order]
        self._waiting: Dict[str, Entry] = {}
        self._ordinary: List[tuple] = []      # (*order key, ticket, entry)
        self._prioritised: List[tuple] = []   # (priority, *order key, ticket, entry)
        self._slot_ages: Dict[object, List[Tuple[int, str]]] = {}  # sorted, waiting only
        self._slot_head: Dict[object, Entry] = {}  # the prioritised entry of each slot
        self._tickets = itertools.count()

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, name: str) -> bool:
        return name in self._waiting

    def get(self, name: str) -> Optional[Entry]:
        return self._waiting.get(name)

    def prioritised_names(self) -> List[str]:
        return [e.name for e in self._waiting.values() if e.prioritised]

    # -- adding -----------------------------------------------------------------------
    def add(self, entry: Entry) -> None:
        """Queue ENTRY (replacing a waiting entry of the same name)."""
        self.discard(entry.name)
        self._waiting[entry.name] = entry
        if entry.slot is not None:
            self._add_to_slot(entry)
        elif entry.priority is not None:
            self._push(entry, prioritised=True)
        else:
            self._push(entry, prioritised=False)

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
        entry.ticket = ticket = next(self._tickets)
        entry.prioritised = prioritised
        key = self._order_key(entry)
        if prioritised:
            priority = SLOT_PRIORITY if entry.priority is None else entry.priority
            heapq.heappush(self._prioritised, (priority, *key, ticket, entry))
        else:
            heapq.heappush(self._ordinary, (*key, ticket, entry))
        if len(self._ordinary) + len(self._prioritised) > 2 * len(self._waiting) + 1024:
            self._compact()

    # -- taking -----------------------------------------------------------------------
    def pop(self) -> Optional[Entry]:
        """The next entry to publish (its `prioritised` says which queue it came
        from), or None when nothing waits."""
        for heap in (self._prioritised, self._ordinary):
            while heap:
                item = heapq.heappop(heap)
                entry = item[-1]
                if entry.ticket == item[-2]:
                    self._remove(entry)
                    return entry
        return None

    def take(self, name: str) -> Optional[Entry]:
        """Remove the waiting entry NAME out of turn and return it (None if not waiting)."""
        entry = self._waiting.get(name)
        if entry is not None:
            self._remove(entry)
        return entry

    def discard(self, name: str) -> None:
        self.take(name)  # its heap item is skipped when reached

    def _remove(self, entry: Entry) -> None:
        del self._waiting[entry.name]
        entry.ticket = None
        if entry.slot is None:
            return
        key = _slot_key(entry.slot)
        ages = self._slot_ages[key]
        del ages[bisect.bisect_left(ages, (entry.mtime_ns, entry.name))]
        if not ages:
            del self._slot_ages[key]
        if self._slot_head.get(key) is entry:
            del self._slot_head[key]

    def _compact(self) -> None:
        for heap in (self._ordinary, self._prioritised):
            heap[:] = [item for item in heap if item[-1].ticket == item[-2]]
            heapq.heapify(heap)
