"""The backlog of a messages directory (pure): file names waiting to be published,
handed out in lexical order, each name at most once."""

from __future__ import annotations

import heapq
from typing import List, Optional, Set


class Backlog:
    def __init__(self):
        self._heap: List[str] = []
        self._waiting: Set[str] = set()

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, name: str) -> bool:
        return name in self._waiting

    def add(self, name: str) -> bool:
        """Queue NAME; False when it is already waiting."""
        if name in self._waiting:
            return False
        self._waiting.add(name)
        heapq.heappush(self._heap, name)
        return True

    def pop(self) -> Optional[str]:
        """The next name to publish, or None when nothing waits."""
        while self._heap:
            name = heapq.heappop(self._heap)
            if name in self._waiting:
                self._waiting.discard(name)
                return name
        return None

    def discard(self, name: str) -> None:
        self._waiting.discard(name)  # its heap entry is skipped when reached
