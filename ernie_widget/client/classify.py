"""Turn an error body (any status, any ERNIE surface) into the right exception.

Shapes, codes and retry rules: docs/ernie-wire.md §1.6, §2.5, §7, §8.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import (
    AuthenticationError,
    BadRequestError,
    ContextLengthError,
    ErnieError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

__all__ = ["TOKEN_EXPIRED_CODES", "error_from_body", "error_from_status", "error_in", "parse_retry_after"]

#: v1 codes that mean "refresh the OAuth token once and resend" (not counted as a retry)
TOKEN_EXPIRED_CODES = frozenset({110, 111})
_V1_RETRY = frozenset({1, 2, 15, 18, 336100, 336501, 336502})
_V1_RATE = frozenset({4, 17, 18, 19, 40410, 336501, 336502})
#: daily / total request quotas: a RateLimitError, but waiting seconds cannot help (docs/ernie-wire.md §2.5)
_V1_QUOTA = frozenset({17, 19})
_V1_AUTH = frozenset({6, 13, 14, 100, 110, 111, 40401})
_V1_SERVER = frozenset({1, 2, 15, 336000, 336100})
_V1_CONTEXT = frozenset({336007, 336103, 336104, 336105})


def error_in(obj: Any) -> Any:
    """The error part of a parsed body, whatever the HTTP status, else None (docs/ernie-wire.md §8)."""
    if type(obj) is not dict and not isinstance(obj, Mapping):  # the dict test first: once per chunk
        return None
    err = obj.get("error")
    if err:
        return err if isinstance(err, Mapping) else {"message": str(err), "code": obj.get("error_description")}
    if obj.get("error_code") or obj.get("errorCode"):
        return obj
    if obj.get("object") == "error":
        return obj
    if "code" in obj and ("msg" in obj or "message" in obj) and "choices" not in obj and "result" not in obj:
        return obj
    return None


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _fields(err: Any) -> tuple[str | int | None, str]:
    if not isinstance(err, Mapping):
        return None, str(err)
    code = err.get("code", err.get("error_code", err.get("errorCode")))
    if code is None and isinstance(err.get("type"), str):
        code = err["type"]
    msg = err.get("message") or err.get("error_msg") or err.get("errorMsg") or err.get("msg") or ""
    if not msg and err.get("error_description"):
        msg = err["error_description"]
    return code, str(msg)


def _as_int(code: Any) -> int | None:
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.isdigit():
        return int(code)
    return None


def error_from_body(
    err: Any,
    *,
    status: int | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
    partial_text: str = "",
) -> ErnieError:
    """Classify an error object (from `error_in`) into a typed error with a bilingual message."""
    code, msg = _fields(err)
    n = _as_int(code)
    s = str(code or "").lower()
    etype = str(err.get("type", "")).lower() if isinstance(err, Mapping) else ""
    kw: dict[str, Any] = dict(status_code=status, code=code, request_id=request_id,
                              retry_after=retry_after, partial_text=partial_text, body=None)
    detail = f": {msg}" if msg else ""
    # the llama.cpp / vLLM form uses the HTTP status as an integer code
    if status is None and n is not None and 400 <= n < 600 and (etype or not (n in _V1_AUTH or n in _V1_RETRY)):
        status = n
        kw["status_code"] = n

    if n in _V1_AUTH or s in ("invalid_iam_token", "invalid_appid", "invalid_client", "access_denied") \
            or etype == "authentication_error" or status == 401:
        if s == "invalid_model" or s == "no_parameter_permission":
            return PermissionDeniedError(f"无权使用该模型或参数 / no permission for this model or parameter{detail}", **kw)
        return AuthenticationError(f"认证失败，请检查密钥 / authentication failed, check your key{detail}", **kw)
    if s.endswith("rate_limit_exceeded") or s == "offline_batch_reasoning_refused" or n in _V1_RATE \
            or etype == "rate_limit_exceeded" or status == 429:
        rate = RateLimitError(f"请求过于频繁 / rate limit reached{detail}", **kw)
        if n in _V1_QUOTA:
            rate.retryable = False
        return rate
    if s in ("characters_too_long", "tokens_too_long") or n in _V1_CONTEXT or etype == "exceed_context_size_error":
        return ContextLengthError(f"输入过长 / the prompt is too long for this model{detail}", **kw)
    if s.endswith("_unsafe") or etype in ("unsafe_request", "permission_error") or status == 403:
        return PermissionDeniedError(f"请求被拒绝 / request refused{detail}", **kw)
    if n in _V1_SERVER or s in ("internal_error", "dispatch_internal_error", "unavailable_error", "server_error") \
            or etype in ("server_error", "unavailable_error") or (status is not None and status >= 500):
        return ServerError(f"服务暂时不可用 / the service failed or is overloaded{detail}", **kw)
    if status == 404 or etype == "not_found_error":
        return BadRequestError(f"地址或模型不存在 / endpoint or model not found{detail}", **kw)
    if n is not None and n in _V1_RETRY:
        return ServerError(f"服务暂时不可用 / the service is busy{detail}", **kw)
    return BadRequestError(f"请求无效 / the request was rejected{detail}", **kw)


def error_from_status(status: int, text: str, *, request_id: str | None, retry_after: float | None,
                      header_message: str | None = None) -> ErnieError:
    """An error for an HTTP status whose body carried no recognisable error object."""
    snippet = (header_message or text or "").strip().replace("\n", " ")[:200]
    return error_from_body({"message": snippet} if snippet else {}, status=status, request_id=request_id,
                           retry_after=retry_after)
