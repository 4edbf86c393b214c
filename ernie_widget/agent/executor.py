"""`KernelExecutor`: run `run_tools`' tool calls on the kernel's main thread, with Stop and a time limit.

``client.run_tools(prompt, tools, executor=KernelExecutor(shell))`` runs every sync tool (the user's own too) on
the kernel's main thread through `MainThreadRunner` — even when the loop driving `run_tools` runs on another thread
(the chat's private loop, a worker) — under `run_guarded` (guard.py): `ernie_widget.agent.interrupt()` stops
it, its timeout is a SIGALRM on the main thread, so time limits hold wherever the loop runs.

How a call ends, as `run_tools` sees it: the tool's value; its exception, raised (the loop turns it into an error
result for the model); `ToolTimeoutError` after its time limit; `ToolInterrupted` after Stop; `KernelBusy` when a
user's cell is running and the main thread cannot take the job (see main_thread.py). ``BaseException``s that are
not ``Exception``s (``SystemExit`` from a tool) come back as `RuntimeError`, so the loop reports them too.

Async tools are not moved: they run where `InlineExecutor` runs them (on the caller's loop, or on a loop of their
own), because the kernel's loop cannot run a coroutine to its end while a job holds the main thread. Cancelling an
``arun`` (the chat's Stop cancelling its turn) interrupts the tool it is waiting for.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..client.tool_executor import InlineExecutor, ToolTimeoutError
from ..client.tools import Tool
from ..main_thread import MainThreadRunner, main_thread_runner
from .guard import Guarded, interrupt, on_main_thread, run_guarded

__all__ = ["KernelExecutor", "ToolInterrupted"]

#: how long the caller waits for a tool without a time limit
NO_LIMIT_WAIT = 24 * 3600.0
#: the caller's wait beyond the tool's own time limit (scheduling, formatting the result)
WAIT_MARGIN = 5.0


class ToolInterrupted(Exception):
    """The tool was stopped (Stop, `ernie_widget.agent.interrupt`, or a kernel interrupt) before it finished."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(f"{name} 已被用户停止 / {name} was stopped by the user after {seconds:.1f} s")
        self.name = name
        self.seconds = seconds


class KernelExecutor:
    """A `ToolExecutor` that runs sync tools on the kernel's main thread (see the module docstring).

    Make it on the main thread (a cell, the widget's constructor), where the kernel's loop is found, or pass the
    ``runner`` of `ernie_widget.main_thread.main_thread_runner`.
    """

    def __init__(self, shell: Any = None, *, runner: MainThreadRunner | None = None) -> None:
        self._runner = runner if runner is not None else main_thread_runner(shell)
        self._inline = InlineExecutor()

    def run(self, tool: Tool, arguments: dict[str, Any], timeout: float | None) -> Any:
        fn = tool.fn
        assert fn is not None
        if tool.is_async:
            return self._inline.run(tool, arguments, timeout)
        wait = NO_LIMIT_WAIT if not timeout or timeout <= 0 else timeout + WAIT_MARGIN
        guarded: Guarded = self._runner.call(lambda: run_guarded(lambda: fn(**arguments), timeout), timeout=wait)
        return _outcome(tool, guarded, timeout)

    async def arun(self, tool: Tool, arguments: dict[str, Any], timeout: float | None) -> Any:
        if tool.is_async:
            return await self._inline.arun(tool, arguments, timeout)
        if on_main_thread():  # the loop is the kernel's own: the tool blocks it, as any sync call there would
            return self.run(tool, arguments, timeout)
        try:
            return await asyncio.to_thread(self.run, tool, arguments, timeout)
        except asyncio.CancelledError:
            interrupt()  # the turn was stopped: stop the tool code it was waiting for
            raise


def _outcome(tool: Tool, guarded: Guarded, timeout: float | None) -> Any:
    if guarded.status == "ok":
        return guarded.value
    if guarded.status == "timeout":
        limit = f"{timeout:g}" if timeout else "?"
        raise ToolTimeoutError(f"{tool.name} 超时 / {tool.name} timed out after {limit} s")
    if guarded.status == "interrupted":
        raise ToolInterrupted(tool.name, guarded.seconds)
    error = guarded.error
    if isinstance(error, Exception):
        raise error
    raise RuntimeError(f"{tool.name} 异常退出 / {tool.name} ended with {type(error).__name__}: {error}") from error
