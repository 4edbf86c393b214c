"""Per-surface wire encoding: chunk payloads, non-stream bodies and error bodies.

Shapes follow docs/ernie-wire.md: Qianfan v2 and AI Studio (§1, §3), the legacy Qianfan
v1 "wenxinworkshop" API (§2), and OpenAI-compatible servers — FastDeploy, vLLM, llama.cpp (§4).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ._scripts import Answer
from ._tools import call_fragments, v1_function_call, whole_calls

__all__ = ["Context", "Encoder", "StreamPlan", "encoder_for"]

# One shared encoder: json.dumps() with keyword arguments builds a new encoder per call, which is
# measurable at 20k chunks. ensure_ascii=False: the services send raw UTF-8, and split-UTF-8 tests
# need real multi-byte characters on the wire.
_JSON = json.JSONEncoder(ensure_ascii=False)
dumps = _JSON.encode

_SLOT = re.compile(r'"\\u0000(\d)"')


class _Template:
    """A JSON document with `"\\x00<n>"` placeholders, rendered by string joins (fast per chunk)."""

    def __init__(self, obj: Any) -> None:
        self._parts = _SLOT.split(dumps(obj))

    def render(self, *values: Any) -> str:
        parts = self._parts
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            out.append(dumps(values[int(parts[i])]))
            out.append(parts[i + 1])
        return "".join(out)


def _slot(n: int) -> str:
    return f"\x00{n}"


def place_results(obj: dict[str, Any], answer: Answer) -> None:
    """Where search results go is uncertain on the live service (top level, or under `web_search`, §1.4):
    `Answer.search_placement` scripts either."""
    if answer.search_placement == "web_search":
        obj["web_search"] = {"search_results": answer.search_results}
    else:
        obj["search_results"] = answer.search_results


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def message_text(content: Any) -> str:
    """The text of a message `content`: a string, or the text parts of a multimodal list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


@dataclass
class Context:
    """Per-request facts every encoder needs."""

    surface: str
    response_id: str
    created: int
    model: str
    include_usage: bool
    prompt_tokens: int
    echo_text: str


@dataclass
class StreamPlan:
    lead: list[str]  # events before the answer chunks (OpenAI role chunk); not counted as chunks
    lead_trailing_space: bool  # FastDeploy writes `data: {…} \n\n` for its first chunk
    chunks: list[str]  # answer chunks: reasoning first, then text
    tail: list[str]  # after the chunks: usage-only chunk, `[DONE]`


class Encoder:
    """Base: how one surface spells chunks, bodies and errors."""

    default_finish = "normal"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- shared helpers ---------------------------------------------------------------------------

    def text_of(self, answer: Answer) -> str:
        if answer.text is None:
            return "" if answer.tool_calls else self.ctx.echo_text
        return answer.text

    def usage(self, answer: Answer) -> dict[str, int]:
        if answer.usage is not None:
            usage = dict(answer.usage)
            usage.setdefault(
                "total_tokens", usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
            )
            return usage
        completion = len(self.text_of(answer)) + len(answer.reasoning)
        prompt = self.ctx.prompt_tokens
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    #: what a surface says when the answer is a tool call
    tool_finish = "tool_calls"

    def finish_reason(self, answer: Answer) -> str:
        if answer.finish_reason is not None:
            return answer.finish_reason
        if answer.tool_calls:
            return self.tool_finish
        return "length" if answer.is_truncated else self.default_finish

    def tool_chunks(self, answer: Answer, ended: bool) -> list[str]:
        """OpenAI-shaped chunks streaming the answer's tool calls; the last carries the finish reason."""
        if not answer.tool_calls:
            return []
        frags = call_fragments(answer.tool_calls, answer.tool_call_style, max(answer.chunk_size, 4))
        out = []
        for n, calls in enumerate(frags):
            choice: dict[str, Any] = {"index": 0, "delta": {"content": "", "tool_calls": calls},
                                      "finish_reason": None}
            if ended and n == len(frags) - 1:
                choice["finish_reason"] = self.finish_reason(answer)
            out.append(dumps({**self._base, "choices": [choice]}))  # type: ignore[attr-defined]
        return out

    def items(self, answer: Answer) -> list[tuple[str, str]]:
        size = answer.chunk_size
        out = [("reasoning", p) for p in pieces(answer.reasoning, size)]
        out += [("text", p) for p in pieces(self.text_of(answer), size)]
        return out or [("text", "")]

    # -- surface-specific -------------------------------------------------------------------------

    def stream_plan(self, answer: Answer, ended: bool = True) -> StreamPlan:
        raise NotImplementedError

    def text_chunk(self, piece: str, index: int) -> str:
        """A plain mid-stream text chunk (used by endless and oversized faults)."""
        raise NotImplementedError

    def body(self, answer: Answer, ended: bool = True) -> dict[str, Any]:
        raise NotImplementedError

    def error_body(self, status: int, code: Any = None, message: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def midstream_error(self, code: Any, message: str | None, style: str | None) -> list[tuple[str, str]]:
        """Steps `("data", payload)` / `("line", text)` that report an error inside a stream."""
        if style == "llamacpp":
            err = _openai_error(500 if code is None else code, message, nested_param=False)
            return [("line", "error: " + dumps(err["error"])), ("data", "[DONE]")]
        if style == "bare":
            return [("line", dumps(self.error_body(200, code, message)))]
        return [("data", dumps(self.error_body(200, code, message))), ("data", "[DONE]")]


# -- Qianfan v2 and AI Studio ------------------------------------------------------------------------

_V2_ERRORS: dict[int, tuple[str, str, str]] = {
    200: ("internal_error", "high load, please try again later", "internal_error"),
    400: ("invalid_argument", "Invalid argument", "invalid_request_error"),
    401: ("invalid_iam_token", "IAM Certification failed", "invalid_request_error"),
    403: ("system_unsafe", "the system content is unsafe", "unsafe_request"),
    404: ("not_found", "Not found", "invalid_request_error"),
    405: ("method_not_supported", "Method not supported, POST only", "invalid_request_error"),
    429: ("rpm_rate_limit_exceeded", "Rate limit reached for RPM", "rate_limit_exceeded"),
    500: ("internal_error", "Internal error", "internal_error"),
    502: ("dispatch_internal_error", "Dispatch internal error", "internal_error"),
    503: ("internal_error", "Service temporarily unavailable", "internal_error"),
}


_V2_MESSAGES: dict[str, str] = {
    "rpm_rate_limit_exceeded": "Rate limit reached for RPM",
    "tpm_rate_limit_exceeded": "Rate limit reached for TPM",
    "input_tpm_rate_limit_exceeded": "Rate limit reached for input TPM",
    "output_tpm_rate_limit_exceeded": "Rate limit reached for output TPM",
    "user_rate_limit_exceeded": "Rate limit reached for QPS",
    "malformed_json": "Invalid Argument",
    "invalid_model": "No permission to use the model",
    "invalid_messages": "message format invalid",
    "characters_too_long": "the max input characters is 20000",
    "tokens_too_long": "Prompt tokens too long",
    "invalid_appid": "invalid appid",
    "invalid_iam_token": "IAM Certification failed",
    "system_unsafe": "the system content is unsafe",
    "user_setting_unsafe": "the user_setting content is unsafe",
    "internal_error": "Internal error",
    "dispatch_internal_error": "Dispatch internal error",
}


def _v2_type(code: str) -> str:
    if code.endswith("rate_limit_exceeded"):
        return "rate_limit_exceeded"
    if "internal" in code:
        return "internal_error"
    if code.endswith("_unsafe"):
        return "unsafe_request"
    return "invalid_request_error"


class QianfanV2Encoder(Encoder):
    """Qianfan v2 (`/v2/chat/completions`) and AI Studio (`/llm/lmapi/v3/chat/completions`)."""

    object_name = "chat.completion.chunk"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        base = {"id": ctx.response_id, "object": self.object_name, "created": ctx.created, "model": ctx.model}
        self._base = base
        self._text = _Template(
            {
                **base,
                "choices": [{"index": 0, "delta": {"content": _slot(0)}, "finish_reason": None, "flag": 0}],
                "usage": None,
            }
        )
        self._reasoning = _Template(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": "", "reasoning_content": _slot(0)},
                        "finish_reason": None,
                        "flag": 0,
                    }
                ],
                "usage": None,
            }
        )

    def _special(self, answer: Answer, kind: str, piece: str, *, first: bool, last: bool) -> str:
        delta = {"content": piece} if kind == "text" else {"content": "", "reasoning_content": piece}
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None, "flag": 0}
        obj: dict[str, Any] = {**self._base, "choices": [choice], "usage": None}
        if last:
            # Safety signals ride on the last content chunk, after text was shown: this is the
            # case where a client must retract (flag 3/4, §5.5).
            choice["finish_reason"] = self.finish_reason(answer)
            choice["flag"] = answer.flag
            if answer.ban_round is not None:
                choice["ban_round"] = answer.ban_round
            choice["need_clear_history"] = answer.need_clear_history
            if answer.need_clear_history:
                obj["need_clear_history"] = True  # the mock nests it; accept either place
        if answer.search_results is not None and (first or last):
            place_results(obj, answer)  # "first and last chunk" (lobe-chat)
        return dumps(obj)

    def stream_plan(self, answer: Answer, ended: bool = True) -> StreamPlan:
        items = self.items(answer)
        chunks: list[str] = []
        special_first = answer.search_results is not None
        n = len(items)
        calls = bool(answer.tool_calls)
        for i, (kind, piece) in enumerate(items):
            last = ended and i == n - 1 and not calls  # with tool calls, the last call chunk finishes
            if last or (i == 0 and special_first):
                chunks.append(self._special(answer, kind, piece, first=i == 0, last=last))
            elif kind == "text":
                chunks.append(self._text.render(piece))
            else:
                chunks.append(self._reasoning.render(piece))
        chunks += self.tool_chunks(answer, ended)
        tail: list[str] = []
        if ended:
            if self.ctx.include_usage:
                tail.append(dumps({**self._base, "choices": [], "usage": self.usage(answer)}))
            tail.append("[DONE]")
        return StreamPlan([], False, chunks, tail)

    def text_chunk(self, piece: str, index: int) -> str:
        return self._text.render(piece)

    def body(self, answer: Answer, ended: bool = True) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text_of(answer)}
        if answer.reasoning:
            message["reasoning_content"] = answer.reasoning
        if answer.tool_calls:
            message["tool_calls"] = whole_calls(answer.tool_calls)
        choice: dict[str, Any] = {"index": 0, "message": message, "flag": answer.flag}
        if ended:
            choice["finish_reason"] = self.finish_reason(answer)
        if answer.ban_round is not None:
            choice["ban_round"] = answer.ban_round
        choice["need_clear_history"] = answer.need_clear_history
        obj: dict[str, Any] = {
            "id": self.ctx.response_id,
            "object": "chat.completion",
            "created": self.ctx.created,
            "model": self.ctx.model,
            "choices": [choice],
            "usage": self.usage(answer),
        }
        if answer.search_results is not None:
            place_results(obj, answer)
        return obj

    def error_body(self, status: int, code: Any = None, message: str | None = None) -> dict[str, Any]:
        default = _V2_ERRORS.get(status) or (_V2_ERRORS[500] if status >= 500 else _V2_ERRORS[400])
        if code is None:
            code, text, etype = default
        else:
            code = str(code)
            text = _V2_MESSAGES.get(code, default[1])
            etype = default[2] if code == default[0] else _v2_type(code)
        return {
            "error": {"code": code, "message": message or text, "type": etype},
            "id": self.ctx.response_id,
        }


# -- OpenAI-compatible (FastDeploy / vLLM / llama.cpp) -------------------------------------------------

_OPENAI_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request"),
    401: ("authentication_error", "Invalid API Key"),
    403: ("permission_error", "Forbidden"),
    404: ("not_found_error", "File Not Found"),
    429: ("rate_limit_error", "Too many requests, please retry later"),
    500: ("server_error", "Internal server error"),
    501: ("not_supported_error", "Not supported"),
    503: ("unavailable_error", "Loading model"),
}


def _openai_error(code: Any, message: str | None, *, nested_param: bool) -> dict[str, Any]:
    status = code if isinstance(code, int) else 500
    etype, default_msg = _OPENAI_ERRORS.get(status) or _OPENAI_ERRORS[500 if status >= 500 else 400]
    err: dict[str, Any] = {"code": code, "message": message or default_msg, "type": etype}
    if nested_param:  # FastDeploy's ErrorResponse carries `param`
        err["param"] = None
    return {"error": err}


class OpenAIEncoder(Encoder):
    """`/v1/chat/completions` as FastDeploy / vLLM / llama.cpp stream it."""

    default_finish = "stop"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        base = {
            "id": ctx.response_id,
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": ctx.model,
        }
        self._base = base
        self._text = _Template(
            {**base, "choices": [{"index": 0, "delta": {"content": _slot(0)}, "finish_reason": None}]}
        )
        self._reasoning = _Template(
            {
                **base,
                "choices": [{"index": 0, "delta": {"reasoning_content": _slot(0)}, "finish_reason": None}],
            }
        )

    def stream_plan(self, answer: Answer, ended: bool = True) -> StreamPlan:
        lead = [
            dumps(
                {
                    **self._base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": "", "reasoning_content": ""},
                            "finish_reason": None,
                        }
                    ],
                }
            )
        ]
        items = self.items(answer)
        chunks: list[str] = []
        n = len(items)
        for i, (kind, piece) in enumerate(items):
            if ended and i == n - 1 and not answer.tool_calls:
                key = "content" if kind == "text" else "reasoning_content"
                obj: dict[str, Any] = {
                    **self._base,
                    "choices": [
                        {"index": 0, "delta": {key: piece}, "finish_reason": self.finish_reason(answer)}
                    ],
                }
                if answer.search_results is not None:
                    obj["search_results"] = answer.search_results
                chunks.append(dumps(obj))
            elif kind == "text":
                chunks.append(self._text.render(piece))
            else:
                chunks.append(self._reasoning.render(piece))
        chunks += self.tool_chunks(answer, ended)
        tail: list[str] = []
        if ended:
            if self.ctx.include_usage:
                tail.append(dumps({**self._base, "choices": [], "usage": self.usage(answer)}))
            tail.append("[DONE]")
        return StreamPlan(lead, True, chunks, tail)

    def text_chunk(self, piece: str, index: int) -> str:
        return self._text.render(piece)

    def body(self, answer: Answer, ended: bool = True) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text_of(answer)}
        if answer.reasoning:
            message["reasoning_content"] = answer.reasoning
        if answer.tool_calls:
            message["tool_calls"] = whole_calls(answer.tool_calls)
        return {
            "id": self.ctx.response_id,
            "object": "chat.completion",
            "created": self.ctx.created,
            "model": self.ctx.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": self.finish_reason(answer) if ended else None,
                }
            ],
            "usage": self.usage(answer),
        }

    def error_body(self, status: int, code: Any = None, message: str | None = None) -> dict[str, Any]:
        # llama.cpp: the integer HTTP status in `code` (tools/server/server-common.cpp)
        return _openai_error(status if code is None else code, message, nested_param=False)

    def midstream_error(self, code: Any, message: str | None, style: str | None) -> list[tuple[str, str]]:
        if style is None:  # FastDeploy: data: {ErrorResponse} then data: [DONE] (serving_chat.py)
            return [
                ("data", dumps(_openai_error(500 if code is None else code, message, nested_param=True))),
                ("data", "[DONE]"),
            ]
        return super().midstream_error(code, message, style)


# -- Qianfan v1 (wenxinworkshop) ---------------------------------------------------------------------

# Official / SDK messages per v1 error code (docs/ernie-wire.md §2.5), so a scripted code reads like
# the real one.
_V1_MESSAGES: dict[int, str] = {
    1: "Unknown error",
    2: "Service temporarily unavailable",
    3: "Unsupported openapi method",
    4: "Open api request limit reached",
    6: "No permission to access data",
    13: "Get service token failed",
    14: "IAM Certification failed",
    15: "app not exists or create failed",
    17: "Open api daily request limit reached",
    18: "Open api qps request limit reached",
    19: "Open api total request limit reached",
    100: "Invalid parameter",
    110: "Access token invalid or no longer valid",
    111: "Access token expired",
    336000: "Internal error",
    336001: "Invalid Argument",
    336002: "Invalid JSON",
    336003: "Invalid parameter",
    336004: "Permission error",
    336005: "API name not exist",
    336100: "server high load, please try again later",
    336101: "Invalid HTTP method",
    336104: "Invalid argument in system",
    336105: "Invalid argument in user_setting",
    336501: "Rate limit reached for RPM",
    336502: "Rate limit reached for TPM",
}

_V1_ERRORS: dict[int, tuple[int, str]] = {
    200: (336100, "server high load, please try again later"),
    400: (336003, "Invalid parameter"),
    401: (110, "Access token invalid or no longer valid"),
    403: (6, "No permission to access data"),
    404: (336005, "API name not exist"),
    429: (336501, "Rate limit reached for RPM"),
    500: (336100, "server high load, please try again later"),
}


class QianfanV1Encoder(Encoder):
    """`/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/<endpoint>`: `result` chunks, `is_end`, no `[DONE]`."""

    tool_finish = "function_call"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._base = {"id": ctx.response_id, "object": "chat.completion", "created": ctx.created}
        p = ctx.prompt_tokens
        self._partial_usage = {"prompt_tokens": p, "completion_tokens": 0, "total_tokens": p}
        self._mid: _Template | None = None

    def _mid_template(self, answer: Answer) -> _Template:
        return _Template(
            {
                **self._base,
                "sentence_id": _slot(0),
                "is_end": False,
                "is_truncated": answer.is_truncated,
                "result": _slot(1),
                "need_clear_history": answer.need_clear_history,
                "usage": self._partial_usage,
            }
        )

    def _last(self, answer: Answer, index: int, piece: str) -> str:
        obj: dict[str, Any] = {
            **self._base,
            "sentence_id": index,
            "is_end": True,
            "is_truncated": answer.is_truncated,
            "result": piece,
            "need_clear_history": answer.need_clear_history,
            "finish_reason": self.finish_reason(answer),
            "usage": self.usage(answer),
        }
        self._add_safety(obj, answer)
        return dumps(obj)

    @staticmethod
    def _add_safety(obj: dict[str, Any], answer: Answer) -> None:
        if answer.flag:
            obj["flag"] = answer.flag
        if answer.ban_round is not None:
            obj["ban_round"] = answer.ban_round
        if answer.search_results is not None:
            obj["search_info"] = {"search_results": answer.search_results}
        if answer.tool_calls:
            obj["function_call"] = v1_function_call(answer.tool_calls, answer.thoughts)

    def items(self, answer: Answer) -> list[tuple[str, str]]:
        # v1 has no reasoning field (ERNIE X1 is v2-only), so reasoning is not sent here.
        return [("text", p) for p in pieces(self.text_of(answer), answer.chunk_size)] or [("text", "")]

    def stream_plan(self, answer: Answer, ended: bool = True) -> StreamPlan:
        items = self.items(answer)
        mid = self._mid_template(answer)
        self._mid = mid
        n = len(items)
        chunks = [
            self._last(answer, i, piece) if ended and i == n - 1 else mid.render(i, piece)
            for i, (_, piece) in enumerate(items)
        ]
        return StreamPlan([], False, chunks, [])

    def text_chunk(self, piece: str, index: int) -> str:
        if self._mid is None:
            self._mid = self._mid_template(Answer())
        return self._mid.render(index, piece)

    def body(self, answer: Answer, ended: bool = True) -> dict[str, Any]:
        obj: dict[str, Any] = {
            **self._base,
            "result": self.text_of(answer),
            "is_truncated": answer.is_truncated,
            "need_clear_history": answer.need_clear_history,
            "usage": self.usage(answer),
        }
        if ended:
            obj["finish_reason"] = self.finish_reason(answer)
        self._add_safety(obj, answer)
        return obj

    def error_body(self, status: int, code: Any = None, message: str | None = None) -> dict[str, Any]:
        default = _V1_ERRORS.get(status) or (
            _V1_ERRORS[500] if status >= 500 else (336001, "Invalid Argument")
        )
        if code is None:
            code, text = default
        else:
            text = _V1_MESSAGES.get(code, default[1]) if isinstance(code, int) else default[1]
        return {"error_code": code, "error_msg": message or text}

    def midstream_error(self, code: Any, message: str | None, style: str | None) -> list[tuple[str, str]]:
        if style is None:  # v1: a bare JSON line, no `data:` prefix, and no [DONE] (§2.4)
            return [("line", dumps(self.error_body(200, code, message)))]
        return super().midstream_error(code, message, style)


def encoder_for(ctx: Context) -> Encoder:
    if ctx.surface == "qianfan-v1":
        return QianfanV1Encoder(ctx)
    if ctx.surface == "openai":
        return OpenAIEncoder(ctx)
    return QianfanV2Encoder(ctx)


def code_msg_body(code: Any, message: str | None) -> dict[str, Any]:
    """The `{"code": …, "msg": …}` on-HTTP-200 shape from Baidu's rate-limit page (§1.6)."""
    return {"code": code or "rpm_rate_limit_exceeded", "msg": message or "Rate limit reached for RPM"}
