"""`GatewayError`: a failure as the gateway answers it — HTTP status, OpenAI-style error body, Retry-After."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..client.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContentFilterError,
    ContextLengthError,
    ErnieError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from ..client.redact import redact

if TYPE_CHECKING:
    from starlette.responses import JSONResponse

__all__ = ["SHUTDOWN_CODE", "GatewayError", "error_response", "from_ernie_error", "internal_error",
           "shutdown_error"]

SHUTDOWN_CODE = "server_shutdown"


class GatewayError(Exception):
    """An error the gateway sends back: ``{"error": {"message", "type", "code"}}`` with ``status``."""

    def __init__(self, status: int, message: str, code: str, type: str = "invalid_request_error",
                 retry_after: float | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.status = status
        self.message = message
        self.code = code
        self.type = type
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.retry_after is not None:
            h["Retry-After"] = str(max(1, int(self.retry_after + 0.999)))
        if self.status == 401:
            h["WWW-Authenticate"] = "Bearer"
        return h


# (class, status, type, code). Order matters: subclasses first. An upstream 401 is the gateway's own
# credential problem, not the caller's: answering 401 would make clients think *their* key is wrong.
# Types and codes are chosen so that clients classify them right even mid-stream, where no HTTP status
# travels with the error ("server_error" type → retryable server error; "*rate_limit_exceeded" → rate limit).
_MAP: tuple[tuple[type[ErnieError], int, str, str], ...] = (
    (ContextLengthError, 400, "invalid_request_error", "context_length_exceeded"),
    (BadRequestError, 400, "invalid_request_error", "invalid_request"),
    (ContentFilterError, 400, "invalid_request_error", "content_filter"),
    (AuthenticationError, 502, "server_error", "upstream_authentication_failed"),
    (PermissionDeniedError, 403, "permission_error", "permission_denied"),
    (RateLimitError, 429, "rate_limit_error", "upstream_rate_limit_exceeded"),
    (APITimeoutError, 504, "server_error", "upstream_timeout"),
    (APIConnectionError, 502, "server_error", "upstream_connection_error"),
    (ServerError, 502, "server_error", "upstream_server_error"),
    (ConfigurationError, 500, "server_error", "gateway_misconfigured"),
)


def from_ernie_error(err: ErnieError) -> GatewayError:
    """Map a client error to what the gateway's caller sees (the message is redacted, never a key)."""
    status, type_, code = next(((s, t, c) for cls, s, t, c in _MAP if isinstance(err, cls)),
                               (502, "server_error", "upstream_error"))
    retry_after = err.retry_after if isinstance(err, RateLimitError | ServerError) else None
    if status == 429 and retry_after is None:
        retry_after = 1.0
    return GatewayError(status, redact(err.message), code, type_, retry_after)


def error_response(err: GatewayError) -> JSONResponse:
    """The HTTP response for ``err``: its status, OpenAI error body and Retry-After."""
    from starlette.responses import JSONResponse

    return JSONResponse(err.body(), status_code=err.status, headers=err.headers())


def internal_error(exc: BaseException) -> GatewayError:
    """What the caller sees of a bug: a 500 in the API's shape, never a traceback. The log gets the type."""
    import logging

    logging.getLogger("ernie_widget.gateway").error("internal error: %s", type(exc).__name__, exc_info=exc)
    return GatewayError(500, "网关内部错误 / internal gateway error", "internal_error", "server_error")


def shutdown_error() -> GatewayError:
    """The answer cut by a shutdown: retry (on another replica, or after the restart)."""
    return GatewayError(503, "网关正在关闭，请重试 / the gateway is shutting down; retry", SHUTDOWN_CODE,
                        "server_error", retry_after=1)
