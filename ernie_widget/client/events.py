"""Normalized stream events and the assembled reply: the one shape every provider produces."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

EventType = Literal["text", "reasoning", "usage", "search_results", "safety", "finish",
                    "tool_call_delta", "tool_call", "tool_result"]

#: ERNIE's citation markers: ^[1]^ or ^[1][3]^ (web_search.enable_citation)
_CITATION = re.compile(r"\^((?:\[\d{1,3}\])+)\^")
_CITATION_NUMBER = re.compile(r"\d+")

__all__ = ["Metrics", "Reply", "Safety", "StreamEvent", "ToolCall", "ToolCallDelta", "ToolResult", "Usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the service reports them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_dict(cls, data: Any) -> Usage | None:
        if not isinstance(data, dict):
            return None
        try:
            p = int(data.get("prompt_tokens") or 0)
            c = int(data.get("completion_tokens") or 0)
            t = int(data.get("total_tokens") or (p + c))
        except (TypeError, ValueError):
            return None
        return cls(p, c, t)

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(frozen=True, slots=True)
class Safety:
    """ERNIE's content-safety signals (see docs/ernie-wire.md §5.3–5.5).

    flag: 0 safe, 1 low risk, 2 no further turns, 3 must not be displayed, 4 withdraw shown text.
    """

    flag: int = 0
    ban_round: int | None = None
    need_clear_history: bool = False

    @property
    def withdraws_text(self) -> bool:
        return self.flag in (3, 4)

    def to_dict(self) -> dict[str, Any]:
        return {"flag": self.flag, "ban_round": self.ban_round, "need_clear_history": self.need_clear_history}


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call as it streams in: a UI can show the call forming.

    ``index`` is the call's position in this answer (0, 1, … in the order calls appeared), whatever the
    server numbered it; ``arguments`` is only the new piece of the JSON argument text.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call the model asked for.

    ``arguments`` is the raw JSON text as the model wrote it; ``parsed`` its value when it is a JSON object,
    else None with the reason in ``error``. ``thoughts`` is what Qianfan v1 says about why it calls.
    """

    id: str
    name: str
    arguments: str = ""
    parsed: dict[str, Any] | None = None
    error: str | None = None
    thoughts: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI-shaped entry of an assistant message's ``tool_calls``."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What running one tool call gave, as sent back to the model (``content``) and as the caller sees it.

    ``status`` is "ok", "error" (the tool raised or timed out; ``content`` says what happened), "denied"
    (the approver said no) or "invalid" (the arguments were not valid for the tool).
    """

    call: ToolCall
    content: str
    status: Literal["ok", "error", "denied", "invalid"] = "ok"
    value: Any = None
    seconds: float = 0.0
    truncated: bool = False

    def to_message(self) -> dict[str, Any]:
        """The ``role: "tool"`` message that carries this result back to the model."""
        return {"role": "tool", "tool_call_id": self.call.id, "name": self.call.name, "content": self.content}


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One normalized piece of a streamed answer."""

    type: EventType
    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    safety: Safety | None = None
    results: tuple[dict[str, Any], ...] | None = None
    request_id: str | None = None
    model: str | None = None
    tool_call: ToolCall | ToolCallDelta | None = None
    tool_result: ToolResult | None = None


@dataclass(frozen=True, slots=True)
class Metrics:
    """Timing of one request, in seconds unless named otherwise."""

    ttft: float | None = None
    duration: float = 0.0
    chunks: int = 0
    tokens_per_s: float | None = None
    retries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ttft_ms": None if self.ttft is None else round(self.ttft * 1000, 1),
            "duration_ms": round(self.duration * 1000, 1),
            "chunks": self.chunks,
            "tokens_per_s": None if self.tokens_per_s is None else round(self.tokens_per_s, 1),
            "retries": self.retries,
        }


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole answer, assembled from its stream."""

    text: str = ""
    reasoning: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None
    request_id: str | None = None
    truncated: bool = False
    safety: Safety | None = None
    metrics: Metrics = field(default_factory=Metrics)
    search_results: tuple[dict[str, Any], ...] = ()
    trimmed_turns: int = 0
    provider: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    parsed: Any = None

    @property
    def citations(self) -> dict[int, dict[str, Any]]:
        """The sources the text cites: marker number (``^[n]^``, or ``^[n][m]^`` for several) → search result
        with that ``index``. A marker without a matching result is left out."""
        if not self.search_results or "^[" not in self.text:
            return {}
        by_index = {r.get("index"): r for r in self.search_results}
        cited: dict[int, dict[str, Any]] = {}
        for group in _CITATION.findall(self.text):
            for n in _CITATION_NUMBER.findall(group):
                if int(n) in by_index:
                    cited.setdefault(int(n), by_index[int(n)])
        return cited

    def to_message(self) -> dict[str, Any]:
        """This answer as the assistant message of a history (with its tool calls, without reasoning:
        thinking is not sent back as history)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        return message

    def __str__(self) -> str:
        return self.text
