"""`Handoff`: work running on the private loop, its items and its result handed to a caller's thread.

The one way code in the kernel's threads (the sync `Stream`, `%%ernie`, `client.map`, the widget's
`AskHandle`) waits for what the private loop produces. The producer is a coroutine function that receives a
`Channel` and may `put` items into it; the consumer takes them with `get` (with a timeout, to draw progress
or a display between items), then `result()`. A consumer that stops early calls `cancel(wait=…)`, which cancels
the producer and waits until its cleanup (closing the HTTP response) has run.

The producer holds only the `Channel`, never the `Handoff`: a `Handoff` dropped without `cancel()` becomes
garbage, and its owner's ``__del__`` can cancel the producer (the sync `Stream` relies on this).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from .background import background_loop, in_background_loop, submit

__all__ = ["Channel", "Handoff", "Signal"]

T = TypeVar("T")
R = TypeVar("R")

#: items queued ahead of a slow consumer before `Channel.put` asks the producer to wait for room
HIGH_WATER = 512


class Signal(enum.Enum):
    """What `Handoff.get` returns instead of an item."""

    IDLE = "idle"  # the timeout passed with nothing new
    DONE = "done"  # the producer has finished: call `result()`


class Channel(Generic[T]):
    """The producer's end, used on the private loop."""

    __slots__ = ("_high_water", "_queue", "_space")

    def __init__(self, q: queue.SimpleQueue[Any], high_water: int) -> None:
        self._queue = q
        self._high_water = high_water
        self._space: asyncio.Event | None = None

    def put(self, item: T) -> bool:
        """Hand ``item`` to the consumer; True when the consumer is behind (then ``await channel.room()``)."""
        q = self._queue
        q.put(item)
        return q.qsize() > self._high_water

    async def room(self) -> None:
        """Wait until the consumer has caught up (to half the high-water mark)."""
        if self._space is None:
            self._space = asyncio.Event()
        self._space.clear()
        await self._space.wait()


class _End:
    __slots__ = ()


_END = _End()
_DONE, _IDLE = Signal.DONE, Signal.IDLE


class Handoff(Generic[T, R]):
    """Runs ``produce(channel)`` on the private loop; the caller's thread takes its items and its result."""

    def __init__(self, produce: Callable[[Channel[T]], Coroutine[Any, Any, R]], *,
                 high_water: int = HIGH_WATER) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._channel: Channel[T] = Channel(self._queue, high_water)
        self._finished = threading.Event()
        self._ended = False
        self.future: concurrent.futures.Future[R] = submit(_run(produce, self._channel, self._finished))

    def get(self, timeout: float | None = None) -> T | Signal:
        """The next item, `Signal.IDLE` when ``timeout`` passed without one, or `Signal.DONE` at the end."""
        # runs for every streamed event of a sync Stream: positional arguments, no lookups it can skip
        if self._ended:
            return _DONE
        try:
            item = self._queue.get(True, timeout)
        except queue.Empty:
            return _IDLE
        space = self._channel._space
        if space is not None and not space.is_set() and self._queue.qsize() < self._channel._high_water // 2:
            background_loop().call_soon_threadsafe(space.set)
        if item is _END:
            self._ended = True
            return _DONE
        return item

    def result(self, timeout: float | None = None) -> R:
        """The producer's return value, or its exception raised here."""
        return self.future.result(timeout)

    @property
    def finished(self) -> bool:
        """True once the producer has ended and cleaned up (however it ended)."""
        return self._finished.is_set()

    def cancel(self, wait: float = 0.0) -> None:
        """Cancel the producer; wait up to ``wait`` seconds for its cleanup (never on the loop's own thread)."""
        if self._finished.is_set():
            return
        self.future.cancel()
        if wait > 0 and not in_background_loop():
            self._finished.wait(wait)


async def _run(produce: Callable[[Channel[T]], Coroutine[Any, Any, R]], channel: Channel[T],
               finished: threading.Event) -> R:
    try:
        return await produce(channel)
    finally:
        channel._queue.put(_END)
        finished.set()
