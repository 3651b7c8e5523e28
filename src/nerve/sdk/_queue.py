"""The in-memory queue: encoded messages waiting to be sent, oldest first.

The client reads a batch with ``peek`` and removes it with ``commit`` only once the batch
is settled, so a batch in flight still counts against the bound. ``SpoolQueue``
(``_spool.py``) has the same interface and keeps the messages on disk instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["EventQueue", "MemoryQueue"]


class EventQueue(Protocol):
    """What the client needs from a queue. Callers hold the client's lock."""

    def __len__(self) -> int: ...

    def put(self, message: bytes) -> None:
        """Append one encoded message (the caller has checked the bound)."""

    def peek(self, max_items: int, max_bytes: int) -> tuple[list[bytes], object]:
        """The oldest messages (within the limits) and a token for ``commit``."""

    def commit(self, token: object) -> None:
        """Remove a peeked batch: it was delivered, or refused for good."""

    def durable_point(self) -> Callable[[], None]:
        """Called under the lock; returns what makes every message put so far durable.

        The returned function runs outside the lock (it may fsync).
        """

    def close(self) -> None:
        """Release files and locks."""


class MemoryQueue:
    """A deque of encoded messages."""

    durable = False

    def __init__(self) -> None:
        self._items: deque[bytes] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: bytes) -> None:
        self._items.append(message)

    def peek(self, max_items: int, max_bytes: int) -> tuple[list[bytes], object]:
        batch: list[bytes] = []
        size = 0
        for item in self._items:
            if batch and (len(batch) >= max_items or size + len(item) > max_bytes):
                break
            batch.append(item)
            size += len(item) + 1
        return batch, len(batch)

    def commit(self, token: object) -> None:
        assert isinstance(token, int)
        for _ in range(token):
            self._items.popleft()

    def durable_point(self) -> Callable[[], None]:
        return _nothing

    def close(self) -> None:
        return None


def _nothing() -> None:
    return None
