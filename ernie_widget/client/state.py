"""One answer's state while it streams, and how a provider's parsed chunk becomes events.

`StreamState` collects text, reasoning, usage and metadata and becomes the `Reply`; `chunk_events` is the
one place a `Chunk` (provider-neutral, see providers/base.py) turns into `StreamEvent`s, for streamed and
unstreamed answers alike.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from .errors import ContentFilterError, ErnieError
from .events import EventType, Metrics, Reply, Safety, StreamEvent, ToolCall, Usage
from .messages import estimate_tokens
from .providers.base import Chunk
from .tool_calls import ToolCallAssembler

__all__ = ["StreamState", "chunk_events", "content_event", "end_events"]


class StreamState:
    """Everything known about one answer while it streams; becomes the `Reply`."""

    __slots__ = ("calls", "chunks", "finish_reason", "first_at", "model", "provider", "reasoning",
                 "request_id", "results", "retries", "safety", "started", "started_at", "text", "tool_calls",
                 "trimmed", "truncated", "usage")

    def __init__(self, provider: str, model: str | None, trimmed: int) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.safety: Safety | None = None
        self.results: tuple[dict[str, Any], ...] = ()
        self.request_id: str | None = None
        self.model = model
        self.provider = provider
        self.truncated = False
        self.started = False  # content reached the caller: no more retries
        self.started_at = time.monotonic()
        self.first_at: float | None = None
        self.chunks = 0
        self.retries = 0
        self.trimmed = trimmed
        self.calls: ToolCallAssembler | None = None  # made at the first tool-call fragment
        self.tool_calls: tuple[ToolCall, ...] = ()  # the complete calls, once the choice finished

    @property
    def partial_text(self) -> str:
        return "".join(self.text)

    def reply(self) -> Reply:
        now = time.monotonic()
        ttft = None if self.first_at is None else self.first_at - self.started_at
        tps = None
        if self.first_at is not None:
            gen_time = max(now - self.first_at, 1e-6)
            n = self.usage.completion_tokens if self.usage and self.usage.completion_tokens else \
                estimate_tokens("".join(self.text) + "".join(self.reasoning))
            tps = n / gen_time if n else None
        metrics = Metrics(ttft=ttft, duration=now - self.started_at, chunks=self.chunks,
                          tokens_per_s=tps, retries=self.retries)
        return Reply(
            text="".join(self.text), reasoning="".join(self.reasoning), usage=self.usage,
            finish_reason=self.finish_reason, model=self.model, request_id=self.request_id,
            truncated=self.truncated or self.finish_reason == "length", safety=self.safety, metrics=metrics,
            search_results=self.results, trimmed_turns=self.trimmed, provider=self.provider,
            tool_calls=self.tool_calls,
        )

    def fail(self, err: ErnieError) -> ErnieError:
        """Attach the text so far to an error (nothing is lost)."""
        if not err.partial_text:
            err.partial_text = self.partial_text
        if not err.partial_reasoning:
            err.partial_reasoning = "".join(self.reasoning)
        if err.request_id is None:
            err.request_id = self.request_id
        return err


def chunk_events(chunk: Chunk, state: StreamState) -> list[StreamEvent]:
    """Fold one parsed chunk into the state; the events it makes for the caller. Runs for every chunk."""
    events: list[StreamEvent] = []
    rid = chunk.request_id
    if rid and not state.request_id:
        state.request_id = rid
    if chunk.model:
        state.model = chunk.model
    if chunk.safety is not None and chunk.safety != state.safety:
        state.safety = chunk.safety
        events.append(StreamEvent("safety", safety=chunk.safety, request_id=state.request_id))
        if chunk.safety.flag == 3:
            raise ContentFilterError(
                "内容因安全原因被拦截 / the answer was blocked by ERNIE's safety system",
                code="flag_3", request_id=state.request_id,
            )
    if chunk.reasoning:
        state.reasoning.append(chunk.reasoning)
        events.append(content_event("reasoning", chunk.reasoning, state.request_id))
    if chunk.text:
        state.text.append(chunk.text)
        events.append(content_event("text", chunk.text, state.request_id))
    if chunk.tool_calls:
        if state.calls is None:
            state.calls = ToolCallAssembler()
        for delta in state.calls.feed(chunk.tool_calls):
            events.append(StreamEvent("tool_call_delta", text=delta.arguments, tool_call=delta,
                                      request_id=state.request_id))
    if not state.started and (chunk.reasoning or chunk.text or chunk.tool_calls):
        # content reached the caller: a retry from here would repeat it
        state.started = True
        state.first_at = time.monotonic()
    if chunk.search_results:
        state.results = chunk.search_results
        events.append(StreamEvent("search_results", results=chunk.search_results, request_id=state.request_id))
    if chunk.usage is not None:
        state.usage = chunk.usage
    if chunk.finish_reason:
        state.finish_reason = chunk.finish_reason
        if state.calls:
            events.extend(_complete_calls(state))
    if chunk.truncated:
        state.truncated = True
    return events


def _complete_calls(state: StreamState) -> list[StreamEvent]:
    """The `tool_call` events, once per answer: when its choice finishes (with `tool_calls`, v1's
    `function_call`, or a plain stop while calls are present), else at its end."""
    assert state.calls is not None
    state.tool_calls = state.calls.calls()
    state.calls = None
    if state.finish_reason in (None, "stop"):
        state.finish_reason = "tool_calls"
    return [StreamEvent("tool_call", text=c.arguments, tool_call=c, request_id=state.request_id)
            for c in state.tool_calls]

def end_events(state: StreamState) -> list[StreamEvent]:
    """The closing events of a finished answer: usage (when known), then finish."""
    events = _complete_calls(state) if state.calls else []
    if state.finish_reason is None:
        state.finish_reason = "length" if state.truncated else "stop"
    if state.usage is not None:
        events.append(StreamEvent("usage", usage=state.usage, request_id=state.request_id, model=state.model))
    events.append(StreamEvent("finish", finish_reason=state.finish_reason, request_id=state.request_id,
                              model=state.model))
    return events


_new_object = object.__new__
_set_field = object.__setattr__
_EVENT_DEFAULTS = tuple((f.name, f.default) for f in dataclasses.fields(StreamEvent)
                        if f.name not in ("type", "text", "request_id"))


def content_event(kind: EventType, text: str, request_id: str | None) -> StreamEvent:
    """A text/reasoning event, built without the frozen dataclass __init__.

    Frozen __init__ goes through a keyword call and eight global lookups; this runs for every chunk
    and is ~40 % cheaper. Every field is set (the others to their defaults), so the event is complete.
    """
    ev = _new_object(StreamEvent)
    _set_field(ev, "type", kind)
    _set_field(ev, "text", text)
    _set_field(ev, "request_id", request_id)
    for name, default in _EVENT_DEFAULTS:
        _set_field(ev, name, default)
    return ev
