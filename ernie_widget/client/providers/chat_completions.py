"""Reading OpenAI-shaped chunks, shared by Qianfan v2, AI Studio and OpenAI-compatible servers."""

from __future__ import annotations

from typing import Any

from ..events import Safety, Usage
from ..messages import Message
from .base import (
    SHAPE_ERRORS,
    Chunk,
    HTTPProvider,
    HTTPRequest,
    normalize_finish,
    str_or_none,
    text_field,
    unreadable_chunk,
)

__all__ = ["OpenAIStyleProvider"]


def _search_results(obj: dict[str, Any]) -> tuple[dict[str, Any], ...] | None:
    # placement is uncertain (docs/ernie-wire.md §1.4): top-level `search_results`, or under `web_search`
    res = obj.get("search_results")
    if res is None and isinstance(obj.get("web_search"), dict):
        res = obj["web_search"].get("search_results")
    if isinstance(res, list) and res:
        return tuple(r for r in res if isinstance(r, dict))
    return None


class OpenAIStyleProvider(HTTPProvider):
    """`POST {base}/chat/completions` with an OpenAI body; SSE ends with `data: [DONE]`."""

    max_tokens_field = "max_tokens"
    bearer_required = True

    def headers(self) -> dict[str, str]:
        key = self.config.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def build_request(self, messages: list[Message], params: dict[str, Any], stream: bool) -> HTTPRequest:
        self.adapt_params(params)
        body: dict[str, Any] = {"model": params.pop("model", None) or self.model, "messages": messages}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        max_tokens = params.pop("max_tokens", None)
        if max_tokens is not None:
            body[self.max_tokens_field] = max_tokens
        body.update({k: v for k, v in params.items() if v is not None})
        return HTTPRequest("POST", f"{self.config.base_url}/chat/completions", body, self.headers())

    def parse_data(self, obj: dict[str, Any]) -> Chunk:
        try:
            return self._parse(obj)
        except SHAPE_ERRORS:
            raise unreadable_chunk(obj) from None

    def _parse(self, obj: dict[str, Any]) -> Chunk:
        # runs once per streamed chunk (tens of thousands per second): look up only what is there
        chunk = Chunk(request_id=str_or_none(obj.get("id")), model=str_or_none(obj.get("model")))
        usage = obj.get("usage")
        if usage:
            chunk.usage = Usage.from_dict(usage)
        if "search_results" in obj or "web_search" in obj:
            chunk.search_results = _search_results(obj)
        choices = obj.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta is None:
                delta = choice.get("message") or {}
            chunk.text = text_field(delta.get("content"))
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning is not None:
                chunk.reasoning = text_field(reasoning)
            calls = delta.get("tool_calls")
            if calls:
                if not isinstance(calls, list):
                    raise TypeError("tool_calls must be a list")
                chunk.tool_calls = calls
            reason = choice.get("finish_reason")
            if reason:
                chunk.finish_reason = normalize_finish(reason)
            flag = choice.get("flag") or obj.get("flag") or 0
            clear = bool(choice.get("need_clear_history") or obj.get("need_clear_history"))
            if flag or clear:
                ban_round = choice.get("ban_round", obj.get("ban_round"))
                chunk.safety = Safety(int(flag), ban_round if isinstance(ban_round, int) else None, clear)
            # the v2 mock also marks `is_end`, but still sends [DONE]: the stream ends there, not here
        return chunk
