"""One request's life, for every provider: limits → authentication → attempt → retry.

An HTTP attempt builds the provider's request, sends it on the loop's transport, and hands the response to the
reader. A failure is retried (with backoff, see retry.py) only while no text has reached the caller: after
that, a retry would repeat text the caller already has. In-process providers (the local model, cassette
replay) produce their events directly, under the same concurrency limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from .config import host_of
from .errors import APIConnectionError, APITimeoutError, ErnieError
from .events import StreamEvent, ToolCall
from .messages import Message, estimate_tokens
from .providers import DirectProvider, HTTPProvider
from .reader import ReadLimits, Secrets, read_body, read_stream
from .redact import redact
from .retry import backoff
from .state import StreamState

if TYPE_CHECKING:
    from .async_client import AsyncErnie
    from .pool import LoopPool

__all__ = ["request_events"]

logger = logging.getLogger("ernie_widget")


async def request_events(client: AsyncErnie, messages: list[Message], params: dict[str, Any], state: StreamState,
                         concurrency: asyncio.Semaphore | None = None,
                         stream: bool = True) -> AsyncGenerator[StreamEvent, None]:
    """The events of one answer from ``client``'s provider, retried as the client's settings allow."""
    provider = client._provider
    pool = client._pool()
    async with concurrency or pool.semaphore:
        if isinstance(provider, DirectProvider):
            # aclosing: a Stop reaches the provider at once, not when the generator is collected
            async with contextlib.aclosing(_direct_events(provider, messages, params, state)) as direct:
                async for ev in direct:
                    yield ev
            return
        limiter = client._rate_limiter
        # only a rate limiter needs the estimate (it walks every message: not for nothing per batch row)
        estimate = 0
        if limiter is not None:
            estimate = estimate_tokens(messages) + int(params.get("max_tokens") or 0)
        attempt = 0
        reauthed = False
        await provider.authenticate(pool.http)
        while True:
            charged = False
            if limiter is not None:
                await limiter.acquire(estimate)
                charged = True
            try:
                async with contextlib.aclosing(
                    _attempt(client, provider, pool, messages, dict(params), state, stream)
                ) as attempt_events:
                    async for ev in attempt_events:
                        yield ev
            except ErnieError as err:
                if charged and limiter is not None and not state.started:
                    limiter.reconcile(estimate, 0)
                if not state.started and not reauthed and provider.needs_reauth(err.code):
                    reauthed = True  # v1 110/111: refresh the token once; not counted as a retry
                    await provider.authenticate(pool.http, force=True)
                    continue
                if state.started or not err.retryable or attempt >= client.max_retries:
                    if attempt and isinstance(err, APIConnectionError) and not state.started:
                        _say_how_long(err, attempt + 1, time.monotonic() - state.started_at)
                    raise state.fail(err) from None
                delay = backoff(attempt + 1, err)
                attempt += 1
                state.retries += 1
                logger.info("retrying after %s (attempt %d, %.2fs)", type(err).__name__, attempt, delay)
                await asyncio.sleep(delay)
                continue
            if charged and limiter is not None and state.usage is not None:
                limiter.reconcile(estimate, state.usage.total_tokens)
            return


async def _direct_events(provider: DirectProvider, messages: list[Message], params: dict[str, Any],
                         state: StreamState) -> AsyncGenerator[StreamEvent, None]:
    try:
        async with contextlib.aclosing(provider.events(messages, dict(params))) as events:
            async for ev in events:
                if ev.type in ("text", "reasoning"):
                    if state.first_at is None:
                        state.first_at = time.monotonic()
                    state.started = True
                    (state.text if ev.type == "text" else state.reasoning).append(ev.text)
                    state.chunks += 1
                elif ev.type == "usage":
                    state.usage = ev.usage
                elif ev.type == "finish":
                    state.finish_reason = ev.finish_reason
                    state.truncated = ev.finish_reason == "length"
                elif ev.type == "safety":
                    state.safety = ev.safety
                elif ev.type == "tool_call" and isinstance(ev.tool_call, ToolCall):
                    state.tool_calls += (ev.tool_call,)
                if ev.model:
                    state.model = ev.model
                if ev.request_id:
                    state.request_id = ev.request_id
                yield ev
    except ErnieError as err:
        raise state.fail(err) from None


async def _attempt(client: AsyncErnie, provider: HTTPProvider, pool: LoopPool, messages: list[Message],
                   params: dict[str, Any], state: StreamState, stream: bool) -> AsyncGenerator[StreamEvent, None]:
    import httpx2

    req = provider.build_request(messages, params, stream=stream)
    secrets = Secrets(provider.secrets())
    limits = ReadLimits(client.timeout, client.stream_idle_timeout, client.max_stream_seconds)
    connect = client._connect_timeout()
    # streamed: `timeout` covers connecting and the first byte; unstreamed (batch rows), the response
    # head arrives only with the whole answer, so the answer's own limit applies
    first_byte = limits.timeout if stream else max(limits.timeout, limits.max_stream_seconds or 0)
    try:
        async with asyncio.timeout(first_byte):
            response = await pool.transport.send(req, connect_timeout=connect,
                                                 read_timeout=client._read_guard() if stream else first_byte)
    except TimeoutError:
        raise APITimeoutError(
            f"{limits.timeout:g} 秒内未收到响应 / no response within {limits.timeout:g}s"
        ) from None
    except httpx2.ConnectTimeout:
        host = host_of(req.url)
        raise APITimeoutError(f"{connect:g} 秒内无法连接 {host} / could not connect to {host} within {connect:g}s "
                              "(connect_timeout)") from None
    except httpx2.TimeoutException as exc:
        raise APITimeoutError(f"连接超时 / timed out connecting: {redact(str(exc), secrets)}") from None
    except httpx2.HTTPError as exc:
        raise APIConnectionError(
            f"无法连接 / could not connect to {client.base_url}: {redact(str(exc) or type(exc).__name__, secrets)}"
        ) from None
    try:
        request_id = response.headers.get("x-baidu-request-id") or response.headers.get("x-request-id")
        if request_id:
            state.request_id = request_id
        ctype = response.headers.get("content-type", "")
        if response.status_code >= 400 or "text/event-stream" not in ctype:
            async for ev in read_body(provider, response, state, secrets):
                yield ev
            return
        async for ev in read_stream(provider, response, state, secrets, limits):
            yield ev
    finally:
        await response.aclose()



def _say_how_long(err: ErnieError, attempts: int, seconds: float) -> None:
    """A connection that failed on every attempt: say what the whole wait was, and where to look next."""
    err.message += (f" — {attempts} 次尝试共 {seconds:.0f} 秒 / {attempts} attempts over {seconds:.0f} s; "
                    "%ernie --doctor (ernie-widget doctor) checks the network, proxy and key")

