"""`run_tools`: ask, run the calls the model asks for, send the results back, repeat until a final answer.

The loop's bookkeeping (`ToolLoop`) is shared by the sync and the async client; each drives it with its own
streams, so sync tools and the approver run in the caller's thread and async ones on the caller's loop.
Every step is an event: the model's text and calls as they stream, then one `tool_result` per call, so a UI
can show each step (and approve it, through ``approve``).

Approval: ``approve(call)`` returns ``True``/``"run"`` (run it), ``False``/``"skip"``/``None`` (do not run
it; the model is told the user declined), or a dict (run it with these arguments instead). An approver that
raises stops the loop with its error.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import BadRequestError
from .events import Reply, StreamEvent, ToolCall, ToolResult
from .messages import Message, normalize_messages
from .tool_executor import InlineExecutor, ToolExecutor, ToolTimeoutError, bounded_text
from .tools import Tool, as_tool

if TYPE_CHECKING:
    from .async_client import AsyncErnie
    from .sync import Ernie

__all__ = ["Approver", "AsyncToolEvents", "ToolEvents", "ToolLoop", "ToolRun", "arun_tool_events", "run_tool_events"]

Decision = bool | str | Mapping[str, Any] | None
Approver = Callable[[ToolCall], Decision | Awaitable[Decision]]

#: what the model reads when the user declines a call
DENIED = "The user declined to run this tool call. 用户拒绝了这次工具调用。"
MAX_RESULT_CHARS = 20_000
TOOL_TIMEOUT = 60.0


@dataclass
class ToolRun:
    """What `run_tools` did: the final answer, the whole history (ready to continue), every result."""

    reply: Reply
    messages: list[Message]
    results: list[ToolResult] = field(default_factory=list)
    rounds: int = 0
    #: "answer": the model answered without asking for more; "max_rounds": it still asked after max_rounds
    #: rounds of calls, and `reply` holds those unexecuted calls
    stop_reason: Literal["answer", "max_rounds"] = "answer"

    @property
    def text(self) -> str:
        return self.reply.text

    def __str__(self) -> str:
        return self.reply.text


class ToolLoop:
    """The state of one `run_tools`: the tools by name, the history so far, the results, the round count."""

    def __init__(self, prompt_or_messages: str | Sequence[Mapping[str, Any]], tools: Sequence[Any],
                 *, system: str | None, max_rounds: int, tool_timeout: float | None, max_result_chars: int,
                 params: dict[str, Any]) -> None:
        if max_rounds < 1:
            raise BadRequestError(f"max_rounds 至少为 1 / max_rounds must be at least 1, got {max_rounds!r}")
        made = [as_tool(t) for t in tools]
        if not made:
            raise BadRequestError("run_tools 需要至少一个工具 / run_tools needs at least one tool")
        self.tools: dict[str, Tool] = {t.name: t for t in made}
        self.messages: list[Message] = normalize_messages(prompt_or_messages, system)
        self.params = {**params, "tools": made}
        self.max_rounds = max_rounds
        self.tool_timeout = tool_timeout
        self.max_result_chars = max_result_chars
        self.results: list[ToolResult] = []
        self.rounds = 0
        self.last: Reply | None = None
        #: the last answer asked for calls after max_rounds rounds: they are not run and the loop ends
        self.over = False

    def calls_of(self, reply: Reply) -> tuple[ToolCall, ...]:
        """Record an answer; the calls to run now (none: the loop is over)."""
        self.last = reply
        self.messages.append(reply.to_message())
        if not reply.tool_calls or self.rounds >= self.max_rounds:
            self.over = bool(reply.tool_calls)
            return ()
        self.rounds += 1
        return reply.tool_calls

    def prepare(self, call: ToolCall) -> tuple[Tool, dict[str, Any]] | ToolResult:
        """The tool and its arguments, or the result that says why the call cannot run."""
        found = self.tools.get(call.name)
        if found is None or found.fn is None:
            known = ", ".join(n for n, t in self.tools.items() if t.fn is not None)
            why = "has no function to run" if found is not None else "does not exist"
            return self.finish(call, f"Error: tool {call.name!r} {why}. Available tools: {known}.", "error")
        if call.parsed is None:
            return self.finish(call, f"Error: {call.error}. Send the arguments as one JSON object.", "invalid")
        return found, dict(call.parsed)

    def decide(self, call: ToolCall, tool: Tool, arguments: dict[str, Any],
               decision: Decision) -> dict[str, Any] | ToolResult:
        """The arguments to run with after the approver's decision, or the denial."""
        if decision is True or decision == "run":
            edited: Mapping[str, Any] = arguments
        elif decision is False or decision is None or decision == "skip":
            return self.finish(call, DENIED, "denied")
        elif isinstance(decision, Mapping):
            edited = decision
        else:
            raise BadRequestError(f"approve() 的返回值无效 / approve() returns True/'run', False/'skip' or a dict of "
                                  f"arguments, not {decision!r}")
        try:
            return tool.arguments(edited)
        except ValueError as exc:
            return self.finish(call, f"Error: {exc}", "invalid")

    def timeout_of(self, tool: Tool) -> float | None:
        return tool.timeout if tool.timeout is not None else self.tool_timeout

    def outcome(self, call: ToolCall, value: Any = None, error: BaseException | None = None,
                seconds: float = 0.0) -> ToolResult:
        """The result of a call that ran: its value, or the error it raised (reported, not raised)."""
        if error is not None:
            kind = "timed out" if isinstance(error, ToolTimeoutError) else f"raised {type(error).__name__}"
            return self.finish(call, f"Error: the tool {kind}: {error}", "error", None, seconds)
        return self.finish(call, value, "ok", value, seconds)

    def finish(self, call: ToolCall, content: Any, status: Any, value: Any = None,
               seconds: float = 0.0) -> ToolResult:
        text, truncated = bounded_text(content, self.max_result_chars)
        result = ToolResult(call, text, status, value, round(seconds, 4), truncated)
        self.results.append(result)
        self.messages.append(result.to_message())
        return result

    def done(self) -> ToolRun:
        assert self.last is not None
        stop: Literal["answer", "max_rounds"] = "max_rounds" if self.last.tool_calls else "answer"
        return ToolRun(self.last, self.messages, self.results, self.rounds, stop)


def _result_event(result: ToolResult) -> StreamEvent:
    return StreamEvent("tool_result", text=result.content, tool_result=result)


class ToolEvents:
    """An iterator over a `run_tools` loop's events; ``.run`` is the `ToolRun` once it is exhausted."""

    def __init__(self, events: Iterator[StreamEvent], loop: ToolLoop) -> None:
        self._events = events
        self._loop = loop
        self.run: ToolRun | None = None

    def __iter__(self) -> ToolEvents:
        return self

    def __next__(self) -> StreamEvent:
        try:
            return next(self._events)
        except StopIteration:
            self.run = self._loop.done()
            raise

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()


class AsyncToolEvents:
    """`ToolEvents` for ``async for``."""

    def __init__(self, events: AsyncIterator[StreamEvent], loop: ToolLoop) -> None:
        self._events = events
        self._loop = loop
        self.run: ToolRun | None = None

    def __aiter__(self) -> AsyncToolEvents:
        return self

    @property
    def messages(self) -> list[Message]:
        """The history so far (the next request sends it). Between events a caller may change it: redact a
        ``tool`` message that was just added, or append a user message (image parts) after a round's results."""
        return self._loop.messages

    async def __anext__(self) -> StreamEvent:
        try:
            return await self._events.__anext__()
        except StopAsyncIteration:
            self.run = self._loop.done()
            raise

    async def aclose(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()


def run_tool_events(client: Ernie, loop: ToolLoop, approve: Approver | None,
                    executor: ToolExecutor | None) -> ToolEvents:
    """The sync loop: streams on the client's private loop; tools and the approver in this thread."""
    runner = executor or InlineExecutor()

    def events() -> Iterator[StreamEvent]:
        while True:
            with client.stream(loop.messages, **loop.params) as stream:
                yield from stream
            assert stream.reply is not None
            for call in loop.calls_of(stream.reply):
                yield _result_event(_handle(loop, runner, approve, call))
            if not loop.last or not loop.last.tool_calls or _over(loop):
                return

    return ToolEvents(events(), loop)


def _over(loop: ToolLoop) -> bool:
    """Whether the last answer's calls went unrun because max_rounds was reached (not judged by call ids: a
    server may number its calls per answer, so an id of this round may equal one that ran before)."""
    return loop.over


def _handle(loop: ToolLoop, runner: ToolExecutor, approve: Approver | None, call: ToolCall) -> ToolResult:
    """One call in the sync loop: checked, approved in this thread, run."""
    ready = loop.prepare(call)
    if isinstance(ready, ToolResult):
        return ready
    tool, arguments = ready
    decision = True if approve is None else approve(call)
    if inspect.isawaitable(decision):
        raise BadRequestError("同步 run_tools 的 approve 不能是异步函数 / the sync run_tools takes a plain approve "
                              "function; use AsyncErnie.run_tools for an async one")
    approved = loop.decide(call, tool, arguments, decision)
    if isinstance(approved, ToolResult):
        return approved
    return _run(loop, runner, call, tool, approved)


async def _ahandle(loop: ToolLoop, runner: ToolExecutor, approve: Approver | None, call: ToolCall) -> ToolResult:
    """One call in the async loop: checked, approved (an async approver is awaited), run."""
    ready = loop.prepare(call)
    if isinstance(ready, ToolResult):
        return ready
    tool, arguments = ready
    decision = True if approve is None else approve(call)
    if inspect.isawaitable(decision):
        decision = await decision
    approved = loop.decide(call, tool, arguments, decision)
    if isinstance(approved, ToolResult):
        return approved
    return await _arun(loop, runner, call, tool, approved)


def _run(loop: ToolLoop, runner: ToolExecutor, call: ToolCall, tool: Tool, arguments: dict[str, Any]) -> ToolResult:
    started = time.monotonic()
    try:
        value = runner.run(tool, arguments, loop.timeout_of(tool))
    except Exception as exc:  # a tool's failure is the model's information, not the caller's crash
        return loop.outcome(call, error=exc, seconds=time.monotonic() - started)
    return loop.outcome(call, value, seconds=time.monotonic() - started)


def arun_tool_events(client: AsyncErnie, loop: ToolLoop, approve: Approver | None,
                     executor: ToolExecutor | None) -> AsyncToolEvents:
    """The async loop: streams, async tools and an async approver on the caller's loop."""
    runner = executor or InlineExecutor()

    async def events() -> AsyncIterator[StreamEvent]:
        while True:
            async with client.stream(loop.messages, **loop.params) as stream:
                async for ev in stream:
                    yield ev
            assert stream.reply is not None
            for call in loop.calls_of(stream.reply):
                yield _result_event(await _ahandle(loop, runner, approve, call))
            if not loop.last or not loop.last.tool_calls or _over(loop):
                return

    return AsyncToolEvents(events(), loop)


async def _arun(loop: ToolLoop, runner: ToolExecutor, call: ToolCall, tool: Tool,
                arguments: dict[str, Any]) -> ToolResult:
    started = time.monotonic()
    arun = getattr(runner, "arun", None)
    try:
        if arun is not None:
            value = await arun(tool, arguments, loop.timeout_of(tool))
        else:
            value = runner.run(tool, arguments, loop.timeout_of(tool))
    except Exception as exc:
        return loop.outcome(call, error=exc, seconds=time.monotonic() - started)
    return loop.outcome(call, value, seconds=time.monotonic() - started)
