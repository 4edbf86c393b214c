"""Every way an ERNIE request can fail, as one exception tree.

    ErnieError                      base: .partial_text, .status_code, .code, .request_id
     ├── ConfigurationError         no provider/credentials configured, or an unknown provider
     ├── BadRequestError            HTTP 400 / invalid_* / 3360xx; also v1 message rules broken locally
     │    └── ContextLengthError    the prompt is longer than the model accepts
     ├── AuthenticationError        HTTP 401, invalid key/token (v1 110/111 after one refresh, 14, 100)
     ├── PermissionDeniedError      HTTP 403, no permission for the model, *_unsafe rejections
     ├── RateLimitError             HTTP 429, *_rate_limit_exceeded, v1 4/17/18/19
     ├── ServerError                HTTP 5xx, internal_error, v1 1/2/336000/336100
     ├── ContentFilterError         the answer was blocked by ERNIE's safety system (flag 3)
     └── APIConnectionError         the connection failed or broke
          ├── APITimeoutError       no first byte within `timeout`, no data within `stream_idle_timeout`,
          │                         or the answer exceeded `max_stream_seconds`
          └── IncompleteStreamError the stream ended (or was cut) without its end signal,
                                    or a chunk could not be read (malformed JSON, > 1 MiB, bad UTF-8)

Every error carries the text streamed before it failed in ``.partial_text``, so nothing is lost.
Messages read "中文 / English" on one line and never contain a key or token.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ContentFilterError",
    "ContextLengthError",
    "ErnieError",
    "IncompleteStreamError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
]


class ErnieError(Exception):
    """Base class of every ernie-widget error."""

    #: whether the request may succeed if sent again (before any text reached the caller)
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        partial_reasoning: str = "",
        status_code: int | None = None,
        code: str | int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body

    def __str__(self) -> str:
        extra = []
        if self.status_code is not None:
            extra.append(f"HTTP {self.status_code}")
        if self.code not in (None, ""):
            extra.append(f"code={self.code}")
        if self.request_id:
            extra.append(f"request_id={self.request_id}")
        return f"{self.message} ({', '.join(extra)})" if extra else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # keep keyword fields across pickling (multiprocessing, the gateway)
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[ErnieError], message: str, state: dict[str, Any]) -> ErnieError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ConfigurationError(ErnieError):
    """The client cannot tell which ERNIE service to use, or how to authenticate."""


class BadRequestError(ErnieError):
    """The request was rejected as invalid; sending it again will not help."""


class ContextLengthError(BadRequestError):
    """The prompt exceeds the model's input limit."""


class AuthenticationError(ErnieError):
    """The key or token was missing, wrong or expired."""


class PermissionDeniedError(ErnieError):
    """The credentials are valid but may not use this model, or the input was rejected as unsafe."""


class RateLimitError(ErnieError):
    """Too many requests or tokens per minute; retried with backoff before the answer starts."""

    retryable = True


class ServerError(ErnieError):
    """The service failed or is overloaded; retried with backoff before the answer starts."""

    retryable = True


class ContentFilterError(ErnieError):
    """ERNIE's safety system blocked the answer (flag 3: must not be displayed)."""


class APIConnectionError(ErnieError):
    """The connection could not be made, or broke."""

    retryable = True


class APITimeoutError(APIConnectionError):
    """A time limit was exceeded (first byte, idle stream, or whole answer)."""


class IncompleteStreamError(APIConnectionError):
    """The stream ended without its end signal, or carried an unreadable chunk."""
