"""The OpenAI chat-completions wire format: reading a request, writing chunks, bodies and errors."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from ..client.events import Safety, Usage
from .errors import GatewayError

__all__ = ["ChatRequest", "chunk_bytes", "completion_body", "dumps", "parse_chat_request", "sse_data"]

#: request fields passed to the upstream service as they are (anything else is ignored)
PASSTHROUGH = ("temperature", "top_p", "max_tokens", "stop", "presence_penalty", "frequency_penalty", "seed",
               "response_format", "penalty_score", "enable_thinking", "web_search")
_ROLES = ("system", "user", "assistant", "tool")
DEFAULT_MODEL_NAMES = ("", "default")


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def sse_data(obj: Any) -> bytes:
    return b"data: " + dumps(obj).encode("utf-8") + b"\n\n"


DONE = b"data: [DONE]\n\n"


@dataclass
class ChatRequest:
    """A validated chat request: what to ask upstream and how to answer."""

    messages: list[dict[str, Any]]
    model: str | None = None
    stream: bool = False
    include_usage: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: "chatcmpl-" + secrets.token_hex(12))
    created: int = field(default_factory=lambda: int(time.time()))


def _bad(message: str, code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, message, code)


def parse_chat_request(body: Any, allowed_models: tuple[str, ...] = ()) -> ChatRequest:
    """Validate an OpenAI chat body; raises a 400 `GatewayError` naming the problem."""
    if not isinstance(body, dict):
        raise _bad("请求体必须是 JSON 对象 / the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' 必须是非空列表 / 'messages' must be a non-empty list")
    clean: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise _bad(f"messages[{i}] 需要 role 为 {'/'.join(_ROLES)} / messages[{i}] needs a valid role")
        content = m.get("content")
        if content is None:
            content = ""
        if not isinstance(content, str | list):
            raise _bad(f"messages[{i}].content 必须是字符串或列表 / messages[{i}].content must be a string or list")
        clean.append({"role": m["role"], "content": content})
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad("'model' 必须是字符串 / 'model' must be a string")
    if model in DEFAULT_MODEL_NAMES:
        model = None
    if model is not None and allowed_models and model not in allowed_models:
        raise GatewayError(404, f"模型不存在 / the model {model!r} does not exist on this gateway", "model_not_found")
    n = body.get("n")
    if n not in (None, 1):
        raise _bad("只支持 n=1 / only n=1 is supported")
    params = {k: body[k] for k in PASSTHROUGH if body.get(k) is not None}
    if body.get("max_completion_tokens") is not None and "max_tokens" not in params:
        params["max_tokens"] = body["max_completion_tokens"]
    stream_options = body.get("stream_options")
    include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
    return ChatRequest(clean, model, bool(body.get("stream")), include_usage, params)


def _safety_fields(safety: Safety | None) -> dict[str, Any]:
    if safety is None:
        return {}
    out: dict[str, Any] = {"flag": safety.flag}
    if safety.ban_round is not None:
        out["ban_round"] = safety.ban_round
    if safety.need_clear_history:
        out["need_clear_history"] = True
    return out


def chunk_bytes(req: ChatRequest, model: str, delta: dict[str, Any], finish_reason: str | None = None,
                safety: Safety | None = None) -> bytes:
    """One ``data: {chat.completion.chunk}`` event."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, **_safety_fields(safety)}
    return sse_data({"id": req.id, "object": "chat.completion.chunk", "created": req.created, "model": model,
                     "choices": [choice]})


def usage_chunk_bytes(req: ChatRequest, model: str, usage: Usage) -> bytes:
    return sse_data({"id": req.id, "object": "chat.completion.chunk", "created": req.created, "model": model,
                     "choices": [], "usage": usage.to_dict()})


def completion_body(req: ChatRequest, model: str, text: str, reasoning: str, finish_reason: str | None,
                    usage: Usage | None, safety: Safety | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        message["reasoning_content"] = reasoning
    body: dict[str, Any] = {
        "id": req.id, "object": "chat.completion", "created": req.created, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason or "stop",
                     **_safety_fields(safety)}],
    }
    if usage is not None:
        body["usage"] = usage.to_dict()
    return body
