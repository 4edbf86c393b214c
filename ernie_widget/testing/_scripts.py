"""What the simulator answers: `Answer` (a successful reply) and `Fault` (a one-shot failure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Answer", "Fault"]


@dataclass(frozen=True)
class Answer:
    """A successful reply, streamed in `chunk_size`-character chunks (reasoning chunks first).

    `text=None` means the deterministic echo answer derived from the last user message.
    `usage=None` counts one token per character of the prompt and of the answer.
    `finish_reason=None` uses the surface default ("normal" on Qianfan/AI Studio, "stop" on OpenAI).
    `heartbeat` truthy sends a `: keep-alive` comment between chunks.
    `split_utf8` writes every event in several socket writes split inside multi-byte characters.
    `gzip` compresses the body, but only when the client sent `Accept-Encoding: gzip`.
    `tool_calls` (``[{"name": …, "arguments": {…} or "json", "id": optional}]``) are streamed after the
    text in `tool_call_style` (see _tools.py), and the finish reason becomes "tool_calls" (v1: one
    `function_call` object with `thoughts`, finish reason "function_call"). `text=None` is then "".
    """

    text: str | None = None
    reasoning: str = ""
    chunk_size: int = 4
    delay: float = 0.0
    usage: dict[str, int] | None = None
    finish_reason: str | None = None
    flag: int = 0
    ban_round: int | None = None
    need_clear_history: bool = False
    search_results: list[dict[str, Any]] | None = None
    search_placement: str = "top"  # or "web_search": the results under a `web_search` object (v2)
    is_truncated: bool = False
    crlf: bool = False
    gzip: bool = False
    split_utf8: bool = False
    heartbeat: float | bool | None = None
    model: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_style: str = "fragments"
    thoughts: str | None = None

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if self.tool_calls is not None:
            from ._tools import TOOL_CALL_STYLES

            if self.tool_call_style not in TOOL_CALL_STYLES:
                raise ValueError(f"tool_call_style must be one of {TOOL_CALL_STYLES}")


@dataclass(frozen=True)
class Fault:
    """A one-shot failure for one chat request. Build it with the class-method constructors.

    Stream faults fire after `after_chunks` answer chunks (reasoning + text); the chunks before the
    fault come from `answer` (default: the simulator's default answer). On a non-stream request a
    stream fault degrades sensibly: `cut` sends half the body, `stall`/`endless` send nothing until
    the client gives up, `error_midstream` becomes an error body on HTTP 200, `malformed` and
    `oversized` corrupt or inflate the JSON body.
    """

    kind: str
    after_chunks: int = 0
    http_status: int = 200
    retry_after: float | str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    code: int | str | None = None
    message: str | None = None
    style: str | None = None
    seconds: float = 0.0
    heartbeat: float | None = None
    size: int = 0
    interval: float = 0.005
    answer: Answer | None = None

    @classmethod
    def status(
        cls,
        code: int,
        retry_after: float | str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """An HTTP error `code` with the surface's error body (or `body`: dict → JSON, str/bytes raw)."""
        return cls(
            "status", http_status=code, retry_after=retry_after, body=body, headers=dict(headers or {})
        )

    @classmethod
    def error_in_200(
        cls, code: int | str | None = None, message: str | None = None, style: str | None = None
    ) -> Fault:
        """An error body on HTTP 200. `style="code_msg"` gives the `{"code":…,"msg":…}` rate-limit shape."""
        return cls("error_in_200", code=code, message=message, style=style)

    @classmethod
    def error_midstream(
        cls,
        after_chunks: int = 2,
        code: int | str | None = None,
        message: str | None = None,
        style: str | None = None,
        answer: Answer | None = None,
    ) -> Fault:
        """An error event after N chunks: v1 bare JSON line; others `data: {"error":…}` + `[DONE]`;
        `style="llamacpp"` an `error: {…}` line + `[DONE]`."""
        return cls(
            "error_midstream",
            after_chunks=after_chunks,
            code=code,
            message=message,
            style=style,
            answer=answer,
        )

    @classmethod
    def cut(cls, after_chunks: int = 2, answer: Answer | None = None) -> Fault:
        """Close the socket after N chunks without the terminating HTTP chunk."""
        return cls("cut", after_chunks=after_chunks, answer=answer)

    @classmethod
    def stall(
        cls,
        after_chunks: int = 1,
        seconds: float = 30.0,
        heartbeat: float | None = None,
        answer: Answer | None = None,
    ) -> Fault:
        """Send nothing (or only `: keep-alive` every `heartbeat` s) for `seconds`, then close."""
        return cls("stall", after_chunks=after_chunks, seconds=seconds, heartbeat=heartbeat, answer=answer)

    @classmethod
    def malformed(cls, after_chunks: int = 1, answer: Answer | None = None) -> Fault:
        """Insert a broken `data: {"choices": [` event after N chunks, then finish normally."""
        return cls("malformed", after_chunks=after_chunks, answer=answer)

    @classmethod
    def oversized(
        cls, after_chunks: int = 1, size: int = 2 * 1024 * 1024, answer: Answer | None = None
    ) -> Fault:
        """Insert one valid data event of more than `size` bytes after N chunks, then finish normally."""
        return cls("oversized", after_chunks=after_chunks, size=size, answer=answer)

    @classmethod
    def endless(cls, interval: float = 0.005, answer: Answer | None = None) -> Fault:
        """Stream answer chunks every `interval` s forever, until the client disconnects."""
        return cls("endless", interval=interval, answer=answer)

    @classmethod
    def no_end(cls, after_chunks: int = 2, answer: Answer | None = None) -> Fault:
        """End the HTTP body cleanly after N chunks, but without `[DONE]` / `is_end` / finish_reason."""
        return cls("no_end", after_chunks=after_chunks, answer=answer)
