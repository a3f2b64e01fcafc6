"""The link's side of each messages directory's in-flight window (pure: no I/O).

A watcher hands the link more messages than its window (EXTENSIONS:
`message-concurrency`, "published-but-not-yet-acknowledged messages allowed at
once"); the link publishes at most `window` of them at a time and keeps the rest
waiting in the order they came. So when a PUBACK frees a slot, the next message goes
out from inside the link at once, instead of after a trip to the watcher and back:
the broker always has the whole window in flight while there is a backlog.

Nothing here is durable: the files stay in new/ until their acknowledgement, and a
lost connection drops every queue (`clear`); the watcher sends them again.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Dict, List, Tuple

# (request id, topic, payload, qos) as the watcher sent it
Item = Tuple[int, str, bytes, int]


class _Sender:
    __slots__ = ("window", "unacked", "waiting")

    def __init__(self, window: int):
        self.window = window
        self.unacked = 0
        self.waiting: Deque[Item] = deque()


class Windows:
    def __init__(self) -> None:
        self._senders: Dict[str, _Sender] = {}

    def add(self, sender: str, window: int, items: List[Item]) -> None:
        """SENDER's messages, in its order; WINDOW is its window now (1 while it
        isolates a suspect message)."""
        state = self._senders.get(sender)
        if state is None:
            state = self._senders[sender] = _Sender(window)
        state.window = max(1, window)
        state.waiting.extend(items)

    def take(self, sender: str) -> List[Item]:
        """The messages of SENDER to publish now, counted as unacknowledged."""
        state = self._senders.get(sender)
        if state is None or not state.waiting:
            return []
        room = state.window - state.unacked
        if room <= 0:
            return []
        taken = [state.waiting.popleft() for _ in range(min(room, len(state.waiting)))]
        state.unacked += len(taken)
        return taken

    def done(self, sender: str) -> None:
        """One published message of SENDER is finished (acknowledged, or refused at
        once): its slot is free."""
        state = self._senders.get(sender)
        if state is not None and state.unacked > 0:
            state.unacked -= 1

    def busy(self, sender: str) -> bool:
        """SENDER has messages in flight and more than a whole window waiting behind
        them: its acknowledgements can wait to be told together (fewer frames)."""
        state = self._senders.get(sender)
        return (state is not None and state.unacked > 0
                and len(state.waiting) > state.window)

    def unacked(self, sender: str) -> int:
        state = self._senders.get(sender)
        return 0 if state is None else state.unacked

    def waiting(self, sender: str) -> int:
        state = self._senders.get(sender)
        return 0 if state is None else len(state.waiting)

    def clear(self) -> None:
        """The connection is gone: nothing is in flight and nothing waits (the
        watchers send everything again after the reconnect)."""
        self._senders.clear()
