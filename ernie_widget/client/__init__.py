"""The streaming ERNIE client: providers, events, errors. Nothing outside this package touches httpx2."""

from __future__ import annotations

from .async_client import AsyncErnie, AsyncStream
from .errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContentFilterError,
    ContextLengthError,
    ErnieError,
    IncompleteStreamError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from .events import Metrics, Reply, Safety, StreamEvent, ToolCall, ToolCallDelta, ToolResult, Usage
from .messages import image
from .models import ModelInfo, model_info
from .structured import StructuredOutputError
from .sync import Ernie, Stream
from .tool_executor import ToolExecutor
from .tool_runner import ToolRun
from .tools import Tool, tool

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AsyncErnie",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ContentFilterError",
    "ContextLengthError",
    "Ernie",
    "ErnieError",
    "IncompleteStreamError",
    "Metrics",
    "ModelInfo",
    "PermissionDeniedError",
    "RateLimitError",
    "Reply",
    "Safety",
    "ServerError",
    "Stream",
    "StreamEvent",
    "StructuredOutputError",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolExecutor",
    "ToolResult",
    "ToolRun",
    "Usage",
    "image",
    "model_info",
    "tool",
]
