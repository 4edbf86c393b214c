"""Admission: who is asking (authentication) and whether their request may go upstream (validation, the
input filter, the user's quotas). Shared by the HTTP and WebSocket transports."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..client.messages import estimate_tokens
from .auth import AuthError, Principal
from .errors import GatewayError
from .openai_wire import ChatRequest, parse_chat_request
from .quotas import QuotaExceeded

if TYPE_CHECKING:
    from .state import Gateway

__all__ = ["admit", "authenticate"]


def authenticate(gw: Gateway, token: str | None) -> Principal:
    try:
        return gw.auth.authenticate(token)
    except AuthError as exc:
        raise GatewayError(exc.status, exc.message, exc.code) from None


async def admit(gw: Gateway, principal: Principal, body: Any) -> tuple[ChatRequest, Any]:
    """Validate, filter the input and charge the user's limits — or raise `GatewayError`."""
    req = parse_chat_request(body, gw.settings.models)
    if principal.models is not None:
        model = req.model or gw.client.model or "default"
        if model not in principal.models:
            raise GatewayError(403, f"此 key 不能使用模型 {model!r} / this key may not use model {model!r} "
                               f"(allowed: {', '.join(principal.models)})", "model_not_allowed", param="model")
    if gw.filter is not None:
        for m in req.messages:
            text = m["content"] if isinstance(m["content"], str) else json.dumps(m["content"], ensure_ascii=False)
            if gw.filter.check(text, "input") is not None:
                raise GatewayError(400, "输入内容被网关的内容过滤器拦截 / the prompt was blocked by the gateway's "
                                   "content filter", "content_filter")
    max_tokens = req.params.get("max_tokens")
    try:
        charge = await gw.quotas.admit(principal, estimate_tokens(req.messages), max_tokens)
    except QuotaExceeded as exc:
        kind = "rate_limit_error" if exc.status == 429 else "invalid_request_error"
        raise GatewayError(exc.status, exc.message, exc.code, kind, exc.retry_after) from None
    if charge.max_tokens is not None:  # what is left of the daily budget bounds this answer
        req.params["max_tokens"] = charge.max_tokens
    return req, charge
