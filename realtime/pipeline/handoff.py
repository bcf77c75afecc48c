"""Hand-over points between the pipeline's threads, bounded in every case.

A ``Handoff`` holds at most ``capacity`` items. What happens when it is full is the policy:
drop the oldest (live: a slow consumer makes items drop, counted, never queues grow) or block
the producer (offline: nothing may be lost, so the slowest stage sets the pace). Producers
``close()`` it when they are done; a consumer that goes away ``cancel()``s it, which also wakes
a blocked producer.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    def __init__(self, capacity: int, block: bool = False):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._items: collections.deque[T] = collections.deque()
        self._capacity, self._block = capacity, block
        self._cond = threading.Condition()
        self.dropped = 0
        self.closed = self.cancelled = False

    def put(self, item: T) -> bool:
        """Add ``item``; False when the handoff was cancelled (the item is not kept)."""
        with self._cond:
            while self._block and len(self._items) >= self._capacity and not self.cancelled:
                self._cond.wait(0.2)
            if self.cancelled:
                return False
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()
            return True

    def take(self, timeout: float = 1.0) -> T | None:
        """The oldest item, or None after ``timeout`` or once closed and empty."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    @property
    def exhausted(self) -> bool:
        """Closed and nothing left to take."""
        with self._cond:
            return self.closed and not self._items

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self.cancelled = self.closed = True
            self._items.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class LatestSlot(Handoff[T]):
    """Holds the newest item only; putting over an unread item counts a drop."""

    def __init__(self):
        super().__init__(1)


class DropOldestQueue(Handoff[T]):
    """A FIFO of at most ``capacity`` items; a put into a full queue drops the oldest."""
