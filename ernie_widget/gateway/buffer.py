"""`StreamBuffer`: the bounded queue between one upstream answer and one HTTP connection."""

from __future__ import annotations

import asyncio
from collections import deque

from .answer import Item

__all__ = ["StreamBuffer"]


class StreamBuffer:
    """A byte-bounded FIFO of `Item`s. ``put`` refuses (returns False) once the backlog would exceed ``max_bytes``:
    the consumer is too slow, and the answer is ended rather than buffered without bound."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.peak_bytes = 0
        self._items: deque[Item] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def put(self, item: Item) -> bool:
        if self._closed:
            return False
        size = item.size
        # the first item always fits: a single huge chunk is bounded by the client's MAX_EVENT_BYTES
        if self._items and self.bytes + size > self.max_bytes:
            return False
        self._items.append(item)
        self.bytes += size
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        self._ready.set()
        return True

    def abort(self, item: Item) -> None:
        self._items.clear()
        self._items.append(item)
        self.bytes = item.size
        self._closed = True
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def get_nowait(self) -> Item | None:
        """The next item if one is waiting, else None."""
        if not self._items:
            return None
        item = self._items.popleft()
        self.bytes -= item.size
        return item

    async def get(self) -> Item | None:
        """The next item, or None once closed and drained."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        self.bytes -= item.size
        return item
