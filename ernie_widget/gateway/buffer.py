"""`StreamBuffer`: the bounded queue between one upstream answer and one HTTP connection."""

from __future__ import annotations

import asyncio
from collections import deque

from .items import Item

__all__ = ["StreamBuffer"]


class StreamBuffer:
    """A byte-bounded FIFO of `Item`s. ``put`` refuses (returns False) once the backlog would exceed ``max_bytes``;
    the producer then waits for room (`wait_for_room`), and a consumer that frees none in time is too slow:
    the answer is ended rather than buffered without bound."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.peak_bytes = 0
        self._items: deque[Item] = deque()
        self._ready = asyncio.Event()
        self._taken = asyncio.Event()  # set whenever the consumer takes an item
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

    async def wait_for_room(self, item: Item, timeout: float) -> bool:
        """Wait until ``item`` fits, at most ``timeout`` seconds; False if it still does not (or closed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._items and self.bytes + item.size > self.max_bytes:
            remaining = deadline - loop.time()
            if self._closed or remaining <= 0:
                return False
            self._taken.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._taken.wait()
            except TimeoutError:
                return False
        return not self._closed

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
        self._taken.set()
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
        self._taken.set()
        return item
