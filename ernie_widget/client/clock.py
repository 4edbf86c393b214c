"""A stream's two time limits (idle and whole-answer) as one lazy timer on the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["StreamClock"]


class StreamClock:
    """A stream's two time limits (`stream_idle_timeout`, `max_stream_seconds`) as one lazy timer.

    A timeout context around every read (``asyncio.timeout_at``) cost more than parsing the chunk
    itself (~13 µs vs ~10 µs for ``json.loads``; the benchmark reads ~20k chunks/s). Instead one timer
    sits at the earliest deadline; when it fires it moves itself if data arrived meanwhile, and cancels
    the task only while it is waiting for bytes — never while the consumer handles an event. A deadline
    that passes while the consumer is busy fires at the next read: the whole-answer limit at once, the
    idle limit after the read had one loop turn to find data that was already buffered.
    """

    __slots__ = ("_cancelling", "_handle", "_hard", "_idle", "_loop", "_overdue", "_task", "expired",
                 "last_data", "reading")

    def __init__(self, loop: asyncio.AbstractEventLoop, idle: float | None, hard: float | None) -> None:
        self._loop = loop
        self._idle = idle
        self._hard = hard
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._handle: asyncio.Handle | None = None
        self._overdue = False
        self.last_data = loop.time()
        self.reading = False
        self.expired: str | None = None  # "idle" or "hard" once this clock cancelled the read
        deadline = self._deadline()
        if deadline is not None:
            self._handle = loop.call_at(deadline, self._fire)

    def _deadline(self) -> float | None:
        if self._idle is None:
            return self._hard
        idle_at = self.last_data + self._idle
        return idle_at if self._hard is None else min(idle_at, self._hard)

    def begin_read(self) -> bool:
        """Mark the start of a read; True when the whole-answer limit has already passed."""
        task = asyncio.current_task()
        if task is not self._task:  # the generator may be driven by another task than last time
            self._task = task
            self._cancelling = task.cancelling() if task is not None else 0
        self.reading = True
        if self._overdue:
            self._overdue = False
            if self._hard is not None and self._loop.time() >= self._hard:
                self.expired = "hard"  # even if data is waiting: an endless answer must end
                return True
            self._handle = self._loop.call_soon(self._fire)
        return False

    def _fire(self) -> None:
        self._handle = None
        deadline = self._deadline()
        if deadline is None:
            return
        now = self._loop.time()
        if deadline > now:  # data arrived since the timer was set
            self._handle = self._loop.call_at(deadline, self._fire)
        elif self.reading and self._task is not None:
            self.expired = "hard" if self._hard is not None and now >= self._hard else "idle"
            self._task.cancel()
        else:
            self._overdue = True

    def timed_out(self) -> bool:
        """After a CancelledError in a read: True if this clock caused it (and the cancel is undone)."""
        self.reading = False
        if self.expired is None or self._task is None:
            return False
        return self._task.uncancel() <= self._cancelling

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
