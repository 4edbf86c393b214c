"""`POST /v1/chat/completions`: OpenAI-compatible, streamed (SSE via sse-starlette) or as one JSON body.

Errors before the first token become an HTTP status with an OpenAI error body; after it, a
``data: {"error": …}`` event. The upstream answer is read by its own task into a bounded
`StreamBuffer`; the response drains it. A client that disconnects cancels that task — and with it the
upstream request — at once; one that reads too slowly gets an error event and the stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from .admission import admit, authenticate
from .answer import AnswerRun
from .auth import bearer_token
from .bodies import read_json
from .buffer import StreamBuffer
from .errors import SHUTDOWN_CODE, GatewayError, error_response, internal_error, shutdown_error
from .items import Item
from .openai_wire import (
    DONE,
    ChatRequest,
    chunk_bytes,
    completion_body,
    dumps,
    sse_data,
    usage_chunk_bytes,
)

if TYPE_CHECKING:
    from .auth import Principal
    from .state import Gateway

__all__ = ["chat_completions"]


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _first_or_disconnect(buffer: StreamBuffer, receive: Receive,
                               timeout: float | None) -> tuple[bool, Item | None]:
    """(disconnected, first item): wait for the first item while watching for the client leaving.

    After ``timeout`` seconds without one, returns (False, None): the caller starts the stream anyway so
    heartbeats keep proxies from closing a connection whose answer is slow to begin.
    """
    get = asyncio.ensure_future(buffer.get())
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await asyncio.wait((get, gone), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not get.done():
            get.cancel()
    if get.done() and not get.cancelled():
        return False, get.result()
    return gone.done() and not gone.cancelled(), None


def _cancel(task: asyncio.Task[Any]) -> None:
    if not task.done() and not task.cancelling():
        task.cancel()


class _Encoder:
    """Items → OpenAI ``chat.completion.chunk`` events."""

    def __init__(self, req: ChatRequest, model: str) -> None:
        self.req = req
        self.model = model
        self.role_sent = False
        self._template: tuple[str, bytes, bytes] | None = None  # (model, before delta, after delta)

    def _fast(self, field: str, text: str) -> bytes:
        """A content delta from a template: only the text is JSON-escaped per chunk (the hot path).

        The bytes are what `chunk_bytes` would build for the same values (tested).
        """
        if self._template is None or self._template[0] != self.model:
            before, _, after = chunk_bytes(self.req, self.model, {"@": "@"}).partition(b'{"@":"@"}')
            self._template = (self.model, before, after)
        _, before, after = self._template
        return b"".join((before, b'{"', field.encode(), b'":', dumps(text).encode("utf-8"), b"}", after))

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        if not self.role_sent:
            self.role_sent = True
            return {"role": "assistant", **delta}
        return delta

    def encode(self, item: Item) -> bytes:
        req = self.req
        if item.model:
            self.model = item.model
        if item.kind in ("text", "reasoning"):
            field = "content" if item.kind == "text" else "reasoning_content"
            if self.role_sent:
                return self._fast(field, item.text)
            return chunk_bytes(req, self.model, self._delta({field: item.text}))
        if item.kind == "safety":
            return chunk_bytes(req, self.model, self._delta({}), safety=item.safety)
        if item.kind == "withdraw":
            from ..client.events import Safety

            # flag 4 tells ERNIE-aware clients (ErnieChat, %%ernie) to withdraw what they showed
            return chunk_bytes(req, self.model, self._delta({"content": "\n\n" + item.text}), safety=Safety(4))
        if item.kind == "end":
            out = chunk_bytes(req, self.model, self._delta({}), finish_reason=item.finish_reason or "stop")
            if req.include_usage and item.usage is not None:
                out += usage_chunk_bytes(req, self.model, item.usage)
            return out + DONE
        assert item.kind == "error" and item.error is not None
        # a shutdown cut is no answer: no [DONE], so no client mistakes it for a complete one
        return sse_data(item.error.body()) + (b"" if item.error.code == SHUTDOWN_CODE else DONE)


class _SSEResponse(EventSourceResponse):
    """sse-starlette's response; a write blocked past ``send_timeout`` just ends the connection, quietly."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with contextlib.suppress(SendTimeoutError):
            await super().__call__(scope, receive, send)


async def chat_completions(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    started = time.monotonic()
    gw.metrics.requests.labels("http").inc()
    principal: Principal | None = None
    try:
        if gw.draining:
            raise shutdown_error()
        principal = authenticate(gw, bearer_token(request.headers.get("authorization")))
        body = await read_json(request, gw.settings.max_body_bytes)
        req, charge = await admit(gw, principal, body)
    except GatewayError as err:
        gw.reject("http", err, started, principal)
        return error_response(err)
    except Exception as exc:  # a bug must still answer in the API's shape, never with a traceback
        bug = internal_error(exc)
        gw.reject("http", bug, started, principal)
        return error_response(bug)

    run = AnswerRun(gw, principal, req, "http", charge, started)
    buffer = StreamBuffer(gw.settings.stream_buffer_bytes)

    async def pump() -> None:
        try:
            await run.run(buffer)
        finally:
            buffer.close()

    task = asyncio.create_task(pump(), name=f"gateway-answer-{req.id}")
    # Errors before the first token keep their HTTP status, so wait for it — but a streamed answer
    # that is slow to start gets its 200 and heartbeats after one heartbeat interval.
    wait = gw.settings.heartbeat if req.stream and gw.settings.heartbeat > 0 else None
    gone, first = await _first_or_disconnect(buffer, request.receive, wait)
    if gone or (first is None and wait is None):
        _cancel(task)
        return Response(status_code=499)
    if first is not None and first.kind == "error" and first.error is not None:
        await asyncio.wait((task,), timeout=5)  # not shield(): a task cancelled by a shutdown must not raise here
        return error_response(first.error)
    headers = {"X-Request-Id": req.id}
    if not req.stream:
        assert first is not None
        return await _collect(req, run, first, buffer, task, request.receive, headers)

    encoder = _Encoder(req, run.model or "default")

    async def events() -> AsyncIterator[bytes]:
        gw.open_streams += 1
        try:
            item: Item | None = first if first is not None else await buffer.get()
            while item is not None:
                # items that are already waiting go out in one write: fewer syscalls when the client
                # is behind, and no added latency when it is not (nothing waits to be batched)
                parts = [encoder.encode(item)]
                ended = item.terminal
                while not ended and len(parts) < 64 and (item := buffer.get_nowait()) is not None:
                    parts.append(encoder.encode(item))
                    ended = item.terminal
                yield b"".join(parts)
                if ended:
                    break
                item = await buffer.get()
            else:  # the buffer closed without an end or an error: never a silent clean end
                yield encoder.encode(Item("error", error=GatewayError(
                    500, "回答意外中断 / the answer ended unexpectedly", "internal_error", "server_error")))
        finally:
            gw.open_streams -= 1
            _cancel(task)  # the client left (or the answer ended): never keep the upstream request open

    return _SSEResponse(
        events(), headers=headers, ping=gw.settings.heartbeat, sep="\n", send_timeout=gw.settings.send_timeout,
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
    )


async def _collect(req: ChatRequest, run: AnswerRun, first: Item, buffer: StreamBuffer, task: asyncio.Task[None],
                   receive: Receive, headers: dict[str, str]) -> Response:
    """The non-stream answer: gather every item, then one JSON body (or the error's status)."""
    text: list[str] = []
    reasoning: list[str] = []
    safety = None
    withdrawn: str | None = None
    end: Item | None = None
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        item: Item | None = first
        while item is not None:
            if item.kind == "text":
                text.append(item.text)
            elif item.kind == "reasoning":
                reasoning.append(item.text)
            elif item.kind == "safety":
                safety = item.safety
            elif item.kind == "withdraw":
                withdrawn = item.text
            elif item.kind == "error" and item.error is not None:
                err = item.error
                if err.status < 400:  # failed after content started: still an error for a one-shot answer
                    err = GatewayError(502, err.message, err.code, err.type)
                await asyncio.wait((task,), timeout=5)
                return error_response(err)
            elif item.kind == "end":
                end = item
                break
            get = asyncio.ensure_future(buffer.get())
            await asyncio.wait((get, gone), return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                get.cancel()
                _cancel(task)
                return Response(status_code=499)
            item = get.result()
    finally:
        gone.cancel()
    await asyncio.wait((task,), timeout=5)
    if end is None:  # the answer ended without an end or an error: say so, never an empty 200
        return error_response(GatewayError(500, "回答意外中断 / the answer ended unexpectedly", "internal_error",
                                           "server_error"))
    body = completion_body(req, run.model or "default", withdrawn if withdrawn is not None else "".join(text),
                           "" if withdrawn is not None else "".join(reasoning), end.finish_reason, end.usage, safety)
    return JSONResponse(body, headers=headers)
