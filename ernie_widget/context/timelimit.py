"""A wall-clock limit for rendering a value, by SIGALRM on the main thread.

Only Python-level code can be cut short: the signal handler runs between bytecodes, so a ``__repr__`` looping
in Python stops at the limit, but a C-level loop (a huge ``str(int)``, a catastrophic regex, a C extension's
repr) runs to its end. Known types are therefore rendered by our own bounded code first, and only unknown objects
reach their ``repr``. Off the main thread (or without ``setitimer``) there is no limit at all; callers render on
the main thread, which is where the kernel runs cells.

Why not ``client.tool_executor._alarm``: this limit must also survive user code that catches it. The exception
is a ``BaseException`` (``except Exception`` in a ``__repr__`` does not swallow it) and the timer repeats until
the block ends; an outer timer (a tool's own limit) is restored with the time it had left.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["RenderTimeout", "can_limit_time", "time_limit"]

#: after the first alarm, how often it fires again while user code keeps swallowing it
_REPEAT = 0.05


class RenderTimeout(BaseException):
    """Rendering ran past its limit. A BaseException, like KeyboardInterrupt, so user code rarely catches it."""


def can_limit_time() -> bool:
    """Whether `time_limit` is enforced here: a signal reaches only the main thread of a Unix process."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[bool]:
    """Raise `RenderTimeout` in the block after ``seconds``; yields whether the limit is enforced at all."""
    if seconds <= 0 or not can_limit_time():
        yield False
        return
    active = True

    def on_alarm(signum: int, frame: Any) -> None:
        # the flag closes the gap between the block's end and the timer being cleared
        if active:
            raise RenderTimeout(f"timed out after {seconds:g} s")

    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds, _REPEAT)
    started = time.monotonic()
    try:
        yield True
    finally:
        active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if outer_delay > 0:  # somebody else's timer was running: give it back what it had left
            left = max(outer_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)
