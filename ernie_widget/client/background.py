"""The one private event loop ("ernie-stream" thread) that runs every stream for the sync client, the widget and
the magics, and the hand-offs to it from other threads.

Why a private loop in a daemon thread: the kernel's own loop is starved by blocking cells, and
`asyncio.run()` fails inside a cell; nest_asyncio patches asyncio globally (docs/notebook-facts.md §5).
The thread starts inside a copy of the caller's context: ipykernel 7.0.x needs its context vars
there to send comm messages from threads (ipython/ipykernel#1450).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["THREAD_NAME", "background_loop", "in_background_loop", "run_sync", "submit"]

THREAD_NAME = "ernie-stream"

_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_pid: int | None = None
_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The private loop, started on first use (and again in a forked child)."""
    global _loop, _thread, _pid
    loop = _loop
    if loop is not None and _pid == os.getpid() and _thread is not None and _thread.is_alive():
        return loop
    with _lock:
        if _loop is None or _pid != os.getpid() or _thread is None or not _thread.is_alive():
            new_loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(new_loop)
                new_loop.call_soon(ready.set)
                new_loop.run_forever()

            ctx = contextvars.copy_context()
            thread = threading.Thread(target=ctx.run, args=(run,), name=THREAD_NAME, daemon=True)
            thread.start()
            ready.wait(5)
            _loop, _thread, _pid = new_loop, thread, os.getpid()
        return _loop


def in_background_loop() -> bool:
    """True when called from the private loop's thread (a blocking wait there would deadlock)."""
    return _thread is not None and threading.current_thread() is _thread


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule *coro* on the private loop; returns a thread-safe Future (cancel() cancels the task)."""
    return asyncio.run_coroutine_threadsafe(coro, background_loop())


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run *coro* on the private loop and wait for it; a KeyboardInterrupt cancels it first."""
    if in_background_loop():
        coro.close()
        raise RuntimeError("run_sync() called from the ernie-widget loop thread; use the async API there")
    future = submit(coro)
    try:
        return future.result(timeout)
    except KeyboardInterrupt:
        future.cancel()
        _wait_cancelled(future)
        raise


def _wait_cancelled(future: concurrent.futures.Future[Any], timeout: float = 2.0) -> None:
    try:
        future.result(timeout)
    except BaseException:
        pass


@atexit.register
def _shutdown() -> None:
    loop = _loop
    if loop is not None and loop.is_running() and _pid == os.getpid():
        loop.call_soon_threadsafe(loop.stop)
