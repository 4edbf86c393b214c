"""The options of `run_tools` / `stream_tools` as a type (one place for the sync and the async client).

``tools``: callables, `Tool`s or OpenAI-style dicts (a dict tool has no function: a call to it is answered with an
error the model can read). ``approve(call)`` decides each call before it runs (tool_runner.py); ``executor`` decides
where it runs (default: sync tools in the calling thread, async tools on the caller's loop). ``tool_timeout`` is
enforced for async tools, and for sync tools only on the main thread (a signal is the only way to interrupt one). A
tool that raises is reported to the model, not raised. Results longer than ``max_result_chars`` are cut, and say so.
Every other option is a request parameter of each round (``model``, ``temperature``, ``tool_choice``, …).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from .tool_executor import ToolExecutor
from .tool_runner import MAX_RESULT_CHARS, TOOL_TIMEOUT, Approver, ToolLoop

__all__ = ["ToolRunOptions", "tool_loop"]


class ToolRunOptions(TypedDict, total=False):
    """Keyword options of ``client.run_tools(prompt, tools, **options)`` and ``client.stream_tools``."""

    #: rounds of tool calls before the loop stops (ToolRun.stop_reason "max_rounds"); default 8
    max_rounds: int
    approve: Approver | None
    executor: ToolExecutor | None
    #: seconds per call (default 60); None: no limit
    tool_timeout: float | None
    #: longest result text the model reads (default 20,000 characters)
    max_result_chars: int
    system: str | None
    model: str | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    tool_choice: Any
    parallel_tool_calls: bool | None
    web_search: Any
    enable_thinking: bool | None


def tool_loop(prompt_or_messages: str | Sequence[Mapping[str, Any]], tools: Sequence[Any],
              options: Mapping[str, Any]) -> tuple[ToolLoop, Approver | None, ToolExecutor | None]:
    """The loop of one `run_tools`, its approver and its executor, from the caller's options."""
    o = dict(options)
    approve, executor = o.pop("approve", None), o.pop("executor", None)
    loop = ToolLoop(prompt_or_messages, tools, system=o.pop("system", None), max_rounds=o.pop("max_rounds", 8),
                    tool_timeout=o.pop("tool_timeout", TOOL_TIMEOUT),
                    max_result_chars=o.pop("max_result_chars", MAX_RESULT_CHARS), params=o)
    return loop, approve, executor
