"""The OpenAI chat-completions wire format: reading a request, writing chunks, bodies and errors."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..client.events import Safety, Usage
from .errors import GatewayError

__all__ = ["ChatRequest", "chunk_bytes", "completion_body", "dumps", "loads_bounded", "parse_chat_request",
           "sse_data"]

#: request fields passed to the upstream service as they are (anything else is ignored)
PASSTHROUGH = ("temperature", "top_p", "max_tokens", "stop", "presence_penalty", "frequency_penalty", "seed",
               "response_format", "penalty_score", "enable_thinking", "web_search")
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


def _bad(message: str, code: str = "invalid_request", param: str | None = None) -> GatewayError:
    return GatewayError(400, message, code, param=param)


#: bounds on the shape of a request body, checked before anything else looks at it
MAX_DEPTH = 32
MAX_MAX_TOKENS = 1 << 20

_Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Message(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[Any] | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    include_usage: bool | None = None


class _ChatBody(BaseModel):
    """The OpenAI chat-completions request as far as the gateway reads it. Strict: a string is never a number,
    a number never a flag; unknown fields are allowed (and ignored, unless passed through)."""

    model_config = ConfigDict(strict=True, extra="allow")

    messages: list[_Message] = Field(min_length=1)
    model: str | None = None
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    n: int | None = None
    temperature: _Finite | None = Field(None, ge=0, le=2)
    top_p: _Finite | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_MAX_TOKENS)
    stop: str | list[str] | None = None
    presence_penalty: _Finite | None = Field(None, ge=-2, le=2)
    frequency_penalty: _Finite | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    penalty_score: _Finite | None = Field(None, ge=1, le=2)
    enable_thinking: bool | None = None
    web_search: bool | dict[str, Any] | None = None


def loads_bounded(raw: bytes | str) -> Any:
    """``json.loads`` that answers a hostile body with a 400, never a RecursionError traceback: invalid JSON,
    or nesting deeper than `MAX_DEPTH` (the C decoder stops a very deep one at the recursion limit, in
    linear time; what it accepts is measured after, without recursion)."""
    too_deep = _bad(f"请求体嵌套过深 / the body nests deeper than {MAX_DEPTH} levels", "invalid_json")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except ValueError:
        raise _bad("请求体不是合法 JSON / the body is not valid JSON", "invalid_json") from None
    if json_depth(value) > MAX_DEPTH:
        raise too_deep
    return value


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (iteratively: no recursion to exhaust; stops past `MAX_DEPTH`)."""
    deepest = 0
    level = [value] if isinstance(value, (list, dict)) else []
    while level and deepest <= MAX_DEPTH:
        deepest += 1
        children: list[Any] = []
        for v in level:
            items = v.values() if isinstance(v, dict) else v
            children.extend(x for x in items if isinstance(x, (list, dict)))
        level = children
    return deepest


def _validation_error(exc: ValidationError) -> GatewayError:
    first = exc.errors(include_url=False, include_input=False)[0]
    loc = first.get("loc", ())
    param = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[") or None
    return _bad(f"参数无效 / invalid parameter {param!r}: {first.get('msg', 'invalid value')}",
                "invalid_request", param)


def parse_chat_request(body: Any, allowed_models: tuple[str, ...] = ()) -> ChatRequest:
    """Validate an OpenAI chat body; raises a 400 `GatewayError` naming the problem."""
    if not isinstance(body, dict):
        raise _bad("请求体必须是 JSON 对象 / the body must be a JSON object")
    if json_depth(body) > MAX_DEPTH:
        raise _bad(f"请求体嵌套过深 / the body nests deeper than {MAX_DEPTH} levels", "invalid_json")
    try:
        parsed = _ChatBody.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    clean = [{"role": m.role, "content": "" if m.content is None else m.content} for m in parsed.messages]
    model = parsed.model
    if model in DEFAULT_MODEL_NAMES:
        model = None
    if model is not None and allowed_models and model not in allowed_models:
        raise GatewayError(404, f"模型不存在 / the model {model!r} does not exist on this gateway", "model_not_found")
    if parsed.n not in (None, 1):
        raise _bad("只支持 n=1 / only n=1 is supported", param="n")
    params = {k: getattr(parsed, k) for k in PASSTHROUGH if getattr(parsed, k) is not None}
    if parsed.max_completion_tokens is not None and "max_tokens" not in params:
        params["max_tokens"] = parsed.max_completion_tokens
    include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
    return ChatRequest(clean, model, bool(parsed.stream), include_usage, params)


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
