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
import time
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from .background import background_loop, in_background_loop, submit

__all__ = ["Channel", "Handoff", "MainThreadJob", "Signal", "offer_to_waiting_main_thread"]

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


class MainThreadJob:
    """A function that must run on the main thread, handed to it while it waits in `Handoff.get` (a sync stream,
    `%%ernie`, ``AskHandle.wait()``): a blocked main thread cannot run anything else, so it runs these between
    items. The result or exception lands in ``future``; ``claim()`` makes sure only one runner runs the job."""

    __slots__ = ("_claimed", "_lock", "fn", "future")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._lock = threading.Lock()
        self._claimed = False

    def claim(self) -> bool:
        """True for the one caller that gets to run the job."""
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def run(self) -> None:
        if not self.claim():
            return
        try:
            self.future.set_result(self.fn())
        except BaseException as exc:  # handed to the waiting caller, never raised into the stream's consumer
            self.future.set_exception(exc)


_MAIN_THREAD = threading.main_thread().ident
#: the queue the main thread is blocked on in `Handoff.get`, if it is
_main_waiting: queue.SimpleQueue[Any] | None = None


def offer_to_waiting_main_thread(job: MainThreadJob) -> bool:
    """Give ``job`` to the main thread if it is blocked in `Handoff.get`; False when it is not waiting there."""
    waiting = _main_waiting
    if waiting is None:
        return False
    waiting.put(job)
    return True


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
        if threading.get_ident() == _MAIN_THREAD:
            item = self._get_on_main(timeout)
            if item is _IDLE:
                return _IDLE
        else:
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

    def _get_on_main(self, timeout: float | None) -> Any:
        """`get` on the main thread: while blocked it runs the `MainThreadJob`s other threads hand it."""
        global _main_waiting
        q = self._queue
        try:  # the common case, an item already there: no bookkeeping per streamed event
            item = q.get_nowait()
        except queue.Empty:
            pass
        else:
            if type(item) is not MainThreadJob:
                return item
            item.run()
        outer, _main_waiting = _main_waiting, q
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    item = self._queue.get(True, left)
                except queue.Empty:
                    return _IDLE
                if type(item) is not MainThreadJob:
                    return item
                item.run()
        finally:
            _main_waiting = outer

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
