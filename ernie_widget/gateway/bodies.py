"""Reading a request's JSON body within a size limit, for every route that takes one."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from .errors import GatewayError
from .openai_wire import loads_bounded

__all__ = ["read_json"]


async def read_json(request: Request, limit: int) -> Any:
    """The parsed body, or a 413 as soon as it exceeds ``limit`` bytes (declared or streamed); deep nesting and
    invalid JSON are 400s (`loads_bounded`)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise GatewayError(413, f"请求体过大 / the body exceeds {limit} bytes", "request_too_large")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise GatewayError(413, f"请求体过大 / the body exceeds {limit} bytes", "request_too_large")
    return loads_bounded(bytes(body))
