"""Where and how a tool call runs: the default executor, its timeouts, and how results are bounded.

By default a sync tool runs in the calling thread and an async tool on the caller's event loop. Timeouts:
an async tool is cancelled when its time is up; a sync tool can only be interrupted by a signal, so its
timeout is enforced only on the main thread of a Unix process (SIGALRM). Elsewhere a sync tool runs to its
end, and that limitation is documented, not hidden. An executor of the caller's own (the agent's kernel
main-thread runner, a sandbox) implements `ToolExecutor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from .tools import Tool

__all__ = ["InlineExecutor", "ToolExecutor", "ToolTimeoutError", "bounded_text", "can_interrupt_sync_tools"]


class ToolTimeoutError(TimeoutError):
    """A tool ran past its timeout."""


@runtime_checkable
class ToolExecutor(Protocol):
    """Runs one tool call. `run` serves the sync loop; an executor may add ``async def arun(...)`` (same
    arguments) for the async loop, which otherwise calls `run`."""

    def run(self, tool: Tool, arguments: dict[str, Any], timeout: float | None) -> Any: ...


def can_interrupt_sync_tools() -> bool:
    """Whether a sync tool's timeout can be enforced here: a signal reaches only the main thread."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _alarm(seconds: float | None, name: str) -> Iterator[None]:
    if not seconds or seconds <= 0 or not can_interrupt_sync_tools():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise ToolTimeoutError(f"{name} 超时 / {name} timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class InlineExecutor:
    """The default: sync tools in the calling thread (timeout by SIGALRM on the main thread only), async
    tools on the caller's loop (the async loop) or on a loop of their own in this thread (the sync loop,
    when no loop runs here; in a thread that already runs a loop, a worker thread with its own loop)."""

    def run(self, tool: Tool, arguments: dict[str, Any], timeout: float | None) -> Any:
        assert tool.fn is not None
        if tool.is_async:
            return _run_coroutine(tool, arguments, timeout)
        with _alarm(timeout, tool.name):
            return tool.fn(**arguments)

    async def arun(self, tool: Tool, arguments: dict[str, Any], timeout: float | None) -> Any:
        assert tool.fn is not None
        if tool.is_async:
            try:
                async with asyncio.timeout(timeout):
                    return await tool.fn(**arguments)
            except TimeoutError:
                raise ToolTimeoutError(f"{tool.name} 超时 / {tool.name} timed out after {timeout:g} s") from None
        with _alarm(timeout, tool.name):
            return tool.fn(**arguments)


def _run_coroutine(tool: Tool, arguments: dict[str, Any], timeout: float | None) -> Any:
    assert tool.fn is not None
    fn = tool.fn

    async def bounded() -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await fn(**arguments)
        except TimeoutError:
            raise ToolTimeoutError(f"{tool.name} 超时 / {tool.name} timed out after {timeout:g} s") from None

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    # a loop already runs in this thread (a Jupyter cell): it cannot be re-entered, so the coroutine gets
    # a thread and a loop of its own
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["value"] = asyncio.run(bounded())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=worker, name=f"ernie-tool-{tool.name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def bounded_text(value: Any, limit: int) -> tuple[str, bool]:
    """A tool's value as the text the model reads, at most ``limit`` characters: (text, truncated).

    Strings go as they are; other values as JSON (unknown objects through ``str``). Nothing is empty:
    ERNIE refuses a blank last message.
    """
    if isinstance(value, str):
        text = value
    elif value is None:
        text = ""
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (ValueError, RecursionError):  # circular or nested past Python's limit
            text = str(value)
    text = text if text.strip() else "(no output)"
    if len(text) <= limit:
        return text, False
    cut = len(text) - limit
    return text[:limit] + f"\n…[{cut} more characters truncated / 已截断 {cut} 个字符]", True
