"""ernie-widget: Baidu ERNIE (文心一言) in Jupyter — a streaming chat widget, %ernie magics, and a client.

    from ernie_widget import Ernie, ErnieChat
    ErnieChat()                     # a chat in the notebook
    %load_ext ernie_widget          # then %%ernie -f code …
    Ernie().chat("你好").text        # the client

Names are imported lazily, so `import ernie_widget` stays fast and the widget stack loads only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Ernie": "ernie_widget.client",
    "AsyncErnie": "ernie_widget.client",
    "StreamEvent": "ernie_widget.client",
    "Reply": "ernie_widget.client",
    "Usage": "ernie_widget.client",
    "Metrics": "ernie_widget.client",
    "Safety": "ernie_widget.client",
    "image": "ernie_widget.client",
    "ErnieError": "ernie_widget.client",
    "ConfigurationError": "ernie_widget.client",
    "AuthenticationError": "ernie_widget.client",
    "PermissionDeniedError": "ernie_widget.client",
    "BadRequestError": "ernie_widget.client",
    "ContextLengthError": "ernie_widget.client",
    "RateLimitError": "ernie_widget.client",
    "ServerError": "ernie_widget.client",
    "APIConnectionError": "ernie_widget.client",
    "APITimeoutError": "ernie_widget.client",
    "IncompleteStreamError": "ernie_widget.client",
    "ContentFilterError": "ernie_widget.client",
    "ErnieChat": "ernie_widget.widget",
}

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AsyncErnie",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ContentFilterError",
    "ContextLengthError",
    "Ernie",
    "ErnieChat",
    "ErnieError",
    "IncompleteStreamError",
    "Metrics",
    "PermissionDeniedError",
    "RateLimitError",
    "Reply",
    "Safety",
    "ServerError",
    "StreamEvent",
    "Usage",
    "__version__",
    "image",
    "load_ipython_extension",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from .client import (
        APIConnectionError,
        APITimeoutError,
        AsyncErnie,
        AuthenticationError,
        BadRequestError,
        ConfigurationError,
        ContentFilterError,
        ContextLengthError,
        Ernie,
        ErnieError,
        IncompleteStreamError,
        Metrics,
        PermissionDeniedError,
        RateLimitError,
        Reply,
        Safety,
        ServerError,
        StreamEvent,
        Usage,
        image,
    )
    from .widget import ErnieChat


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ernie_widget' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext ernie_widget`: registers %ernie / %%ernie."""
    from .magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload_ipython_extension as _unload

    _unload(ipython)
