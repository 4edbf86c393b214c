"""One answer of ErnieChat in flight (`Turn`), the handle `ask()` returns (`AskHandle`), and custom backends.

A custom backend is any callable taking the history: it may return a string, an iterable or async iterable of
text pieces, or a coroutine of either (`backend_texts` adapts them all).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from typing import Any

from .client.background import background_loop
from .client.handoff import Handoff, Signal
from .deltas import DeltaBatcher
from .protocol import StoredMessage, web_sources

__all__ = ["AskHandle", "Backend", "Turn", "backend_texts", "chat_pair", "last_user_index", "public_message"]

Backend = Callable[[list[dict[str, Any]]], Any]


class Turn:
    """One answer in flight: its id, batcher, task, and a stop request that may arrive before the task runs."""

    def __init__(self, mid: int, batcher: DeltaBatcher) -> None:
        self.mid = mid
        self.batcher = batcher
        self.run: Handoff[None, StoredMessage] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._stop = False
        self._lock = threading.Lock()
        #: the web sources seen so far (`protocol.web_sources`); on the loop thread, like the batcher
        self.sources: list[dict[str, Any]] = []
        #: agent mode: the latest `tool_step` message per call (resent to a reconnecting view), the messages of
        #: the rounds that asked for tools (stored before the answer), and where the answer's own text starts
        self.steps: dict[str, dict[str, Any]] = {}
        self.transcript: list[StoredMessage] = []
        self.text_start = 0

    def add_sources(self, results: Any) -> dict[str, Any] | None:
        """Merge search results into `sources`; the `sources` message for the front end when they changed.

        ERNIE may send the list in the first and again in the last chunk: the same list changes nothing."""
        merged = web_sources([*self.sources, *(results or ())])
        if merged == self.sources:
            return None
        self.sources = merged
        return self.sources_message()

    def sources_message(self) -> dict[str, Any]:
        return {"type": "sources", "mid": self.mid, "results": self.sources}

    def store_sources(self, answer: StoredMessage) -> None:
        """The answer keeps every source that streamed and those its reply names; a withdrawn answer keeps none."""
        self.add_sources(answer.get("search_results"))
        if self.sources and not answer.get("withdrawn"):
            answer["search_results"] = self.sources
        else:
            answer.pop("search_results", None)

    def attach(self, task: asyncio.Task[Any]) -> bool:
        """Called first thing on the loop; False when Stop came before the task started."""
        with self._lock:
            self._task = task
            return not self._stop

    def request_stop(self) -> None:
        # Cancel the task, not the concurrent future: the coroutine then finishes normally with
        # status "stopped", so the partial answer is stored and `wait()` returns it.
        with self._lock:
            self._stop = True
            task = self._task
        if task is not None:
            background_loop().call_soon_threadsafe(task.cancel)


class AskHandle:
    """A turn in flight: ``await handle`` in a cell, ``handle.wait()`` in scripts; both give the answer dict."""

    def __init__(self, run: Handoff[None, StoredMessage], stop: Callable[[], None]) -> None:
        self._run = run
        self._stop = stop  # the chat's stop(): the partial answer is stored

    def wait(self, timeout: float | None = None) -> StoredMessage:
        """Block until the answer is complete (a KeyboardInterrupt stops it) and return it.

        On the main thread the wait serves the jobs other threads hand it (main_thread.py): the agent's tools run
        there while a cell waits for the answer."""
        try:
            if threading.current_thread() is threading.main_thread():
                deadline = None if timeout is None else time.monotonic() + timeout
                while True:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    if self._run.get(left) is Signal.DONE:
                        return self._run.result()  # set just after the end is signalled
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                timeout = 0.0
            return self._run.result(timeout)
        except KeyboardInterrupt:
            self._stop()
            raise

    def done(self) -> bool:
        return self._run.future.done()

    def cancel(self) -> None:
        """Stop the answer (the partial text is kept)."""
        self._stop()

    def __await__(self) -> Generator[Any, None, StoredMessage]:
        return asyncio.wrap_future(self._run.future).__await__()

    def __repr__(self) -> str:
        return f"<AskHandle {'done' if self.done() else 'streaming'}>"


async def backend_texts(backend: Backend, history: list[dict[str, Any]]) -> AsyncIterator[str]:
    """Adapt any callable, generator or async generator into an async stream of text pieces.

    Anything that may block (a plain function, each step of a sync generator) runs in a worker
    thread, so a slow model never stalls the loop other streams share.
    """
    loop = asyncio.get_running_loop()
    if inspect.isasyncgenfunction(backend) or inspect.iscoroutinefunction(backend) \
            or inspect.isgeneratorfunction(backend):
        result = backend(history)  # cheap: creates the generator / coroutine
    else:
        result = await loop.run_in_executor(None, backend, history)
    if inspect.isawaitable(result):
        result = await result
    if result is None:
        return
    if isinstance(result, str):
        yield result
        return
    if hasattr(result, "__aiter__"):
        async for piece in result:
            yield str(piece)
        return
    iterator = iter(result)
    sentinel = object()
    try:
        while True:
            piece = await loop.run_in_executor(None, next, iterator, sentinel)
            if piece is sentinel:
                return
            yield str(piece)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            try:
                close()
            except ValueError:  # "generator already executing": a worker is still inside next()
                pass


def chat_pair(ev: Any) -> tuple[str, Any] | None:
    """What a client `StreamEvent` means to the chat's turn, as a ``(kind, value)`` pair (None: nothing)."""
    if ev.type in ("text", "reasoning"):
        return ev.type, ev.text
    if ev.type == "safety" and ev.safety is not None:
        return "safety", ev.safety
    if ev.type == "search_results":
        return "sources", ev.results
    return None


def last_user_index(msgs: list[dict[str, Any]]) -> int | None:
    return max((i for i, m in enumerate(msgs) if m.get("role") == "user"), default=None)


def public_message(m: Mapping[str, Any]) -> dict[str, Any]:
    """What the front end may see of a message (no internal flags)."""
    return {k: v for k, v in m.items() if k != "excluded"}
