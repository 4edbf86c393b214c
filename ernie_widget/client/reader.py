"""Reading a response: a stream line by line, or a whole body, into events — with the time and size limits.

Both HTTP transports hand over a `TransportResponse`; failures arrive as httpx2 exception types (see
transport.py) and leave here as the client's own errors, with keys and tokens redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .classify import error_from_body, error_from_status, error_in, parse_retry_after
from .clock import StreamClock
from .defaults import MAX_BODY_BYTES
from .errors import APIConnectionError, APITimeoutError, IncompleteStreamError
from .events import StreamEvent
from .lines import DONE, ERROR, MAX_EVENT_BYTES, SKIP, LineSplitter, classify_line
from .redact import redact
from .state import StreamState, chunk_events, end_events

if TYPE_CHECKING:
    from .providers.base import HTTPProvider
    from .transport import TransportResponse

__all__ = ["ReadLimits", "Secrets", "drain_tail", "read_body", "read_stream", "redact_obj", "stream_timeout"]


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """The time limits one attempt reads under (the client's settings when it started)."""

    timeout: float
    stream_idle_timeout: float | None
    max_stream_seconds: float | None


async def read_body(provider: HTTPProvider, response: TransportResponse, state: StreamState,
                    secrets: tuple[str, ...]) -> AsyncIterator[StreamEvent]:
    """A JSON (or other) body where a stream was asked for: an error, or a whole answer."""
    import json

    import httpx2

    body = bytearray()
    try:
        async with contextlib.aclosing(response.aiter_bytes()) as parts:
            async for part in parts:
                body += part
                if len(body) > MAX_BODY_BYTES:
                    err = IncompleteStreamError(
                        f"响应超过 {MAX_BODY_BYTES // 2**20} MiB / the response body exceeded "
                        f"{MAX_BODY_BYTES // 2**20} MiB", status_code=response.status_code)
                    err.retryable = False  # the same request would get the same body
                    raise err
    except httpx2.HTTPError as exc:
        raise APIConnectionError(f"读取响应失败 / failed reading the response: {type(exc).__name__}") from None
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    text = body.decode("utf-8", "replace")
    try:
        obj = json.loads(text) if text.strip() else None
    except ValueError:
        obj = None
        # v1 sometimes answers a stream request with bare JSON lines
        for line in text.splitlines():
            if line.strip().startswith("{"):
                try:
                    obj = json.loads(line)
                    break
                except ValueError:
                    continue
    err = error_in(obj)
    if err is not None:
        raise error_from_body(redact_obj(err, secrets), status=status if status >= 400 else None,
                              request_id=state.request_id, retry_after=retry_after)
    if status >= 400:
        raise error_from_status(status, redact(text, secrets), request_id=state.request_id,
                                retry_after=retry_after,
                                header_message=response.headers.get("x-bce-error-message"))
    if not isinstance(obj, dict):
        raise IncompleteStreamError(
            f"服务返回了无法识别的内容 / unexpected response ({response.headers.get('content-type', '?')})",
            status_code=status, request_id=state.request_id,
        )
    chunk = provider.parse_body(obj)
    for ev in chunk_events(chunk, state):
        yield ev
    for ev in end_events(state):
        yield ev


async def read_stream(provider: HTTPProvider, response: TransportResponse, state: StreamState,
                      secrets: tuple[str, ...], limits: ReadLimits) -> AsyncIterator[StreamEvent]:
    """The events of a `text/event-stream` body, line by line, under the idle and whole-answer limits."""
    import httpx2

    splitter = LineSplitter(MAX_EVENT_BYTES)
    loop = asyncio.get_running_loop()
    hard = None
    if limits.max_stream_seconds is not None:  # started_at is time.monotonic(); convert to loop time
        hard = loop.time() + (state.started_at + limits.max_stream_seconds - time.monotonic())
    clock = StreamClock(loop, limits.stream_idle_timeout, hard)
    byte_iter = response.aiter_bytes()
    next_bytes = byte_iter.__aiter__().__anext__
    feed = splitter.feed
    events_of = chunk_events
    parse = provider.parse_data
    done = eof = False
    try:
        while not done:
            if clock.begin_read():
                raise stream_timeout(clock, limits)
            try:
                lines = feed(await next_bytes())
            except StopAsyncIteration:
                eof = True
                lines = splitter.flush()  # a last line without its newline still counts
            except asyncio.CancelledError:
                if clock.timed_out():
                    raise stream_timeout(clock, limits) from None
                raise
            except httpx2.ReadTimeout:
                raise APITimeoutError(f"读取超时 / read timed out after {limits.timeout:g}s") from None
            except (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.NetworkError) as exc:
                raise IncompleteStreamError(
                    f"连接在回答结束前中断 / the connection broke before the answer finished "
                    f"({redact(str(exc) or type(exc).__name__, secrets)})"
                ) from None
            except httpx2.DecodingError:
                raise IncompleteStreamError("响应解压失败 / the response could not be decoded") from None
            clock.reading = False
            for line in lines:
                if not line or line == b"\r":  # the blank line after every event
                    continue
                kind, obj = classify_line(line)
                if kind == SKIP:
                    continue
                if kind == DONE:
                    done = True
                    break
                if kind == ERROR:
                    err = error_in(obj) or obj
                    raise error_from_body(redact_obj(err, secrets), request_id=state.request_id)
                if not isinstance(obj, dict):
                    raise IncompleteStreamError(f"无法识别的流数据 / unexpected stream data: {str(obj)[:80]!r}")
                err = error_in(obj)
                if err is not None:
                    raise error_from_body(redact_obj(err, secrets), request_id=state.request_id)
                clock.last_data = loop.time()  # comments (keep-alives) do not count as data
                state.chunks += 1
                chunk = parse(obj)
                for ev in events_of(chunk, state):
                    yield ev
                if chunk.is_end:
                    done = True
                    break
            if eof:
                break
        if done and not eof:
            # before the byte iterator is closed below: read the chunked terminator so the
            # connection goes back to the pool
            await drain_tail(next_bytes)
    finally:
        clock.close()
        # close httpx2's byte iterators now, not whenever the GC finalizes them (from any thread)
        aclose = getattr(byte_iter, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    if not done:
        raise IncompleteStreamError(
            "回答没有正常结束 / the stream ended without its end signal "
            f"({'[DONE]' if provider.done_sentinel else 'is_end'})"
        )
    for ev in end_events(state):
        yield ev


def stream_timeout(clock: StreamClock, limits: ReadLimits) -> APITimeoutError:
    """The error for the limit that ``clock`` found passed."""
    if clock.expired == "hard":
        return APITimeoutError(
            f"回答超过 {limits.max_stream_seconds:g} 秒上限 / the answer exceeded "
            f"max_stream_seconds={limits.max_stream_seconds:g}"
        )
    idle = limits.stream_idle_timeout
    return APITimeoutError(f"{idle:g} 秒没有收到数据 / no data for {idle:g}s (stream_idle_timeout)")


async def drain_tail(next_bytes: Callable[[], Awaitable[bytes]], limit: int = 65536, wait: float = 0.05) -> None:
    """Read what follows the end signal (the chunked terminator) so the connection goes back to the pool.

    Closing a response with unread bytes drops its connection, which made every streamed request open a
    new TCP connection. A server that keeps talking after [DONE] is cut off after *limit* bytes or *wait* s.
    """
    import httpx2

    read = 0
    try:
        async with asyncio.timeout(wait):
            while read < limit:
                read += len(await next_bytes())
    except (StopAsyncIteration, TimeoutError, httpx2.HTTPError):
        pass


class Secrets(tuple[str, ...]):
    """The secrets of one request; its repr never shows them (tracebacks may print locals)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} secret(s) redacted>"


def redact_obj(err: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(err, dict):
        return {k: redact(v, secrets) if isinstance(v, str) else v for k, v in err.items()}
    return err
