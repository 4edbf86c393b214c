"""Qianfan v1 ("wenxinworkshop"): AK/SK → OAuth access_token, Baidu body, `is_end` (docs/ernie-wire.md §2)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..classify import TOKEN_EXPIRED_CODES, error_from_body, error_in
from ..errors import APIConnectionError, AuthenticationError, BadRequestError
from ..events import Safety, Usage
from ..messages import Message, v1_messages
from ..redact import register_secret
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
from .v1_endpoints import V1_ENDPOINTS as V1_ENDPOINTS  # the table, where it was before (re-exported)
from .v1_endpoints import lookup_v1_endpoint

if TYPE_CHECKING:
    import httpx2

DEFAULT_V1_MODEL = "ERNIE-Speed-8K"

#: A v1 model name becomes one segment of the URL path, next to the OAuth token in the query. So only a plain
#: identifier is sent: "../../x" would reach another path of the host, "m?x=1&" would add query parameters, each
#: carrying the token. Baidu's model names and custom endpoint names are letters, digits, ".", "-" and "_".
PLAIN_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_v1_model(model: str) -> None:
    """Raise BadRequestError unless ``model`` is a plain model identifier (see PLAIN_MODEL_NAME)."""
    if not PLAIN_MODEL_NAME.fullmatch(model):
        raise BadRequestError(
            f"模型名称无效 / a Qianfan v1 model name is letters, digits, '.', '-' and '_' only "
            f"(it becomes part of the URL path), got {model[:60]!r}")


def endpoint_for(model: str) -> str:
    """The v1 endpoint suffix for a model name, matched without regard to case (v1_endpoints.py). An unknown plain
    name is lower-cased: every v1 endpoint suffix in Baidu's tables is lower case, so "ERNIE-X-8K" and "ernie-x-8k"
    reach the same endpoint, as known names do. (Baidu's SDK sends an explicit `endpoint=` unchanged; a custom
    deployment's suffix is set in the console and is lower case there too.)"""
    check_v1_model(model)
    return lookup_v1_endpoint(model) or model.lower()


def v1_function(spec: Mapping[str, Any]) -> dict[str, Any]:
    """One OpenAI-shaped tool as a v1 `functions` entry (name, description, parameters)."""
    fn = spec.get("function", spec)
    # v1 requires a description (Baidu's function-calling reference); the name is the best stand-in
    return {"name": fn["name"], "description": fn.get("description") or fn["name"],
            "parameters": fn.get("parameters") or {"type": "object", "properties": {}}}


class QianfanV1Provider(HTTPProvider):
    ernie_sampling = True
    name = "qianfan-v1"
    done_sentinel = False

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._token: str | None = None
        self._token_at = 0.0
        self._lock: asyncio.Lock | None = None
        self._lock_loop: Any = None

    def secrets(self) -> tuple[str, ...]:
        return (*self.config.secrets, *((self._token,) if self._token else ()))

    def needs_reauth(self, code: Any) -> bool:
        try:
            return int(code) in TOKEN_EXPIRED_CODES
        except (TypeError, ValueError):
            return False

    async def authenticate(self, http: httpx2.AsyncClient, *, force: bool = False) -> None:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        stale = self._token
        async with self._lock:
            if self._token and not (force and self._token == stale):
                return
            import httpx2 as _httpx2

            url = f"{self.config.base_url}/oauth/2.0/token"
            params = {"grant_type": "client_credentials", "client_id": self.config.api_key or "",
                      "client_secret": self.config.secret_key or ""}
            try:
                response = await http.post(url, params=params)
                body = response.json()
            except _httpx2.HTTPError as exc:
                raise APIConnectionError(
                    f"获取访问令牌失败 / could not reach the OAuth token endpoint: {type(exc).__name__}"
                ) from None
            except ValueError:
                raise AuthenticationError("令牌接口返回了无效内容 / the OAuth endpoint returned no JSON",
                                          status_code=response.status_code) from None
            token = body.get("access_token") if isinstance(body, dict) else None
            if not token:
                # Baidu answers {"error": "invalid_client", "error_description": "Client authentication failed"}
                # (docs/ernie-wire.md §2.2): the description says what went wrong, the code which case it is
                fields: Mapping[str, Any] = body if isinstance(body, dict) else {}
                code = fields.get("error") if isinstance(fields.get("error"), str) else None
                reason = fields.get("error_description")
                if not isinstance(reason, str) or not reason.strip():
                    # another shape (error_code/error_msg, message, …): the classifier reads them all
                    err = error_in(body) or {"message": "no access_token"}
                    reason = error_from_body(err, status=response.status_code).message.split(": ", 1)[-1]
                detail = f"{reason} ({code})" if code and code != reason else reason
                # which key is wrong, as Baidu's SDK reads the two descriptions (qianfan resources/auth/oauth.py)
                which_zh, which_en = {
                    "unknown client id": ("QIANFAN_AK（API Key）不存在", "QIANFAN_AK (the API Key) is not known"),
                    "Client authentication failed": ("QIANFAN_SK（Secret Key）与 QIANFAN_AK 不匹配",
                                                     "QIANFAN_SK (the Secret Key) does not match QIANFAN_AK"),
                }.get(reason, ("请检查 QIANFAN_AK 和 QIANFAN_SK", "Check QIANFAN_AK and QIANFAN_SK"))
                console = "https://console.bce.baidu.com/qianfan/ais/console/applicationConsole/application"
                raise AuthenticationError(
                    f"千帆 AK/SK 被拒绝（{detail}）：{which_zh}，请使用千帆控制台「应用接入」中旧版应用的 API Key 和 "
                    f"Secret Key / the Qianfan AK/SK were rejected: {detail}. {which_en}: "
                    f"use the API Key and Secret Key of a legacy (v1) application from the Qianfan console, {console}",
                    status_code=response.status_code, code=code,
                )
            register_secret(token)
            self._token, self._token_at = token, time.monotonic()

    def check_messages(self, messages: list[Message]) -> None:
        v1_messages(messages)  # raises before the OAuth token is fetched or anything is sent

    def check_params(self, params: Mapping[str, Any]) -> None:
        super().check_params(params)
        check_v1_model(params.get("model") or self.model or DEFAULT_V1_MODEL)
        if params.get("parallel_tool_calls") is True:
            raise BadRequestError("千帆 v1 每次只调用一个函数 / Qianfan v1 makes one function call per answer: "
                                  "parallel_tool_calls=True needs Qianfan v2 (QIANFAN_API_KEY)")

    def build_request(self, messages: list[Message], params: dict[str, Any], stream: bool) -> HTTPRequest:
        system, turns = v1_messages(messages)
        self.adapt_params(params)
        model = params.pop("model", None) or self.model or DEFAULT_V1_MODEL
        body: dict[str, Any] = {"messages": turns}
        if system:
            body["system"] = system
        if stream:
            body["stream"] = True
        max_tokens = params.pop("max_tokens", None)
        if max_tokens is not None:
            body["max_output_tokens"] = max_tokens
        tools = params.pop("tools", None)
        if tools:  # v1 spells OpenAI's tools as `functions` (docs/ernie-wire.md §2.3)
            body["functions"] = [v1_function(t) for t in tools]
        params.pop("parallel_tool_calls", None)  # v1 makes one call per answer; check_params refused True
        body.update({k: v for k, v in params.items() if v is not None})
        # quoted as one path segment as well: the name check above is the rule, this is the seatbelt
        endpoint = quote(endpoint_for(model), safe="")
        url = f"{self.config.base_url}/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/{endpoint}"
        return HTTPRequest("POST", url, body, {}, {"access_token": self._token or ""})

    def parse_data(self, obj: dict[str, Any]) -> Chunk:
        try:
            return self._parse(obj)
        except SHAPE_ERRORS:
            raise unreadable_chunk(obj) from None

    def _parse(self, obj: dict[str, Any]) -> Chunk:
        chunk = Chunk(request_id=str_or_none(obj.get("id")), model=None)
        chunk.text = text_field(obj.get("result"))
        if obj.get("usage"):
            chunk.usage = Usage.from_dict(obj["usage"])
        chunk.truncated = bool(obj.get("is_truncated"))
        chunk.is_end = bool(obj.get("is_end"))
        reason = normalize_finish(obj.get("finish_reason"))
        if chunk.is_end or reason not in (None, "stop"):
            chunk.finish_reason = "length" if chunk.truncated else reason
        flag = obj.get("flag") or 0
        clear = bool(obj.get("need_clear_history"))
        if flag or clear:
            ban = obj.get("ban_round")
            chunk.safety = Safety(int(flag), ban if isinstance(ban, int) else None, clear)
        call = obj.get("function_call")
        if isinstance(call, dict) and call.get("name"):
            # v1's one call, whole, with the model's `thoughts` about it; it carries no id (one is made up)
            chunk.tool_calls = [{"function": {"name": call["name"], "arguments": call.get("arguments") or ""},
                                 "thoughts": call.get("thoughts")}]
        info = obj.get("search_info")
        if isinstance(info, dict) and isinstance(info.get("search_results"), list):
            chunk.search_results = tuple(r for r in info["search_results"] if isinstance(r, dict)) or None
        return chunk

    def parse_body(self, obj: dict[str, Any]) -> Chunk:
        chunk = self.parse_data(obj)
        chunk.is_end = True
        if chunk.finish_reason is None:
            chunk.finish_reason = "length" if chunk.truncated else "stop"
        return chunk
