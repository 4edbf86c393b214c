"""The async core: one request lifecycle shared by every HTTP provider, and `AsyncErnie`.

limits (semaphore, RPM/TPM) → provider.build_request → httpx2 (pooled per loop) → line parser
→ provider.parse_data → StreamEvent, with retries only before any content reached the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import functools
import logging
import os
import random
import ssl
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .classify import error_from_body, error_from_status, error_in, parse_retry_after
from .config import ProviderConfig, environment, resolve_config
from .errors import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    ContentFilterError,
    ErnieError,
    IncompleteStreamError,
)
from .events import EventType, Metrics, Reply, Safety, StreamEvent, Usage
from .limits import RateLimiter, make_rate_limiter
from .lines import DONE, ERROR, MAX_EVENT_BYTES, SKIP, LineSplitter, classify_line
from .messages import Message, estimate_tokens, normalize_messages, trim_to_limit
from .providers import DirectProvider, HTTPProvider, make_provider
from .providers.base import Chunk
from .redact import install_log_redaction, redact, register_secret

if TYPE_CHECKING:
    import httpx2

    from .aiohttp_sender import AiohttpResponse, AiohttpSender

logger = logging.getLogger("ernie_widget")

__all__ = ["AsyncErnie", "AsyncStream", "StreamState"]

USER_AGENT = "ernie-widget/0.1"

_NOT_SET: Any = object()


class StreamState:
    """Everything known about one answer while it streams; becomes the `Reply`."""

    __slots__ = ("chunks", "finish_reason", "first_at", "model", "provider", "reasoning",
                 "request_id", "results", "retries", "safety", "started", "started_at", "text", "trimmed",
                 "truncated", "usage")

    def __init__(self, provider: str, model: str | None, trimmed: int) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.safety: Safety | None = None
        self.results: tuple[dict[str, Any], ...] = ()
        self.request_id: str | None = None
        self.model = model
        self.provider = provider
        self.truncated = False
        self.started = False  # content reached the caller: no more retries
        self.started_at = time.monotonic()
        self.first_at: float | None = None
        self.chunks = 0
        self.retries = 0
        self.trimmed = trimmed

    @property
    def partial_text(self) -> str:
        return "".join(self.text)

    def reply(self) -> Reply:
        now = time.monotonic()
        ttft = None if self.first_at is None else self.first_at - self.started_at
        tps = None
        if self.first_at is not None:
            gen_time = max(now - self.first_at, 1e-6)
            n = self.usage.completion_tokens if self.usage and self.usage.completion_tokens else \
                estimate_tokens("".join(self.text) + "".join(self.reasoning))
            tps = n / gen_time if n else None
        metrics = Metrics(ttft=ttft, duration=now - self.started_at, chunks=self.chunks,
                          tokens_per_s=tps, retries=self.retries)
        return Reply(
            text="".join(self.text), reasoning="".join(self.reasoning), usage=self.usage,
            finish_reason=self.finish_reason, model=self.model, request_id=self.request_id,
            truncated=self.truncated or self.finish_reason == "length", safety=self.safety, metrics=metrics,
            search_results=self.results, trimmed_turns=self.trimmed, provider=self.provider,
        )

    def fail(self, err: ErnieError) -> ErnieError:
        """Attach the text so far to an error (nothing is lost)."""
        if not err.partial_text:
            err.partial_text = self.partial_text
        if not err.partial_reasoning:
            err.partial_reasoning = "".join(self.reasoning)
        if err.request_id is None:
            err.request_id = self.request_id
        return err


class _LoopResources:
    """An httpx2 pool and a semaphore that belong to one event loop (never shared across loops)."""

    def __init__(self, http: httpx2.AsyncClient, max_concurrency: int) -> None:
        self.http = http
        self.semaphore = asyncio.Semaphore(max_concurrency)
        self.aiohttp: AiohttpSender | None = None  # chat requests go here when set (see with_own_pool)

    async def aclose(self) -> None:
        try:
            await self.http.aclose()
        finally:
            if self.aiohttp is not None:
                await self.aiohttp.aclose()


@functools.lru_cache(maxsize=8)
def _ssl_context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    """The system trust store, so corporate CAs work (OpenSSL reads SSL_CERT_FILE/SSL_CERT_DIR itself).

    Loading it takes ~100 ms, which every new client paid on its first request; clients now share one
    context per SSL_CERT_* setting (the arguments are only the cache key).
    """
    return ssl.create_default_context()


def _backoff(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, honouring Retry-After (ernie-api.md §7)."""
    delay = random.uniform(0, min(8.0, 0.5 * 2**attempt))
    if retry_after is not None:
        delay = max(delay, min(retry_after, 120.0))
    return delay


class _StreamClock:
    """A stream's two time limits (`stream_idle_timeout`, `max_stream_seconds`) as one lazy timer.

    A timeout context around every read (``asyncio.timeout_at``) cost more than parsing the chunk
    itself (~13 µs vs ~10 µs for ``json.loads``; the benchmark reads ~20k chunks/s). Instead one timer
    sits at the earliest deadline; when it fires it moves itself if data arrived meanwhile, and cancels
    the task only while it is waiting for bytes — never while the consumer handles an event. A deadline
    that passes while the consumer is busy fires at the next read: the whole-answer limit at once, the
    idle limit after the read had one loop turn to find data that was already buffered.
    """

    __slots__ = ("_cancelling", "_handle", "_hard", "_idle", "_loop", "_overdue", "_task", "expired",
                 "last_data", "reading")

    def __init__(self, loop: asyncio.AbstractEventLoop, idle: float | None, hard: float | None) -> None:
        self._loop = loop
        self._idle = idle
        self._hard = hard
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._handle: asyncio.Handle | None = None
        self._overdue = False
        self.last_data = loop.time()
        self.reading = False
        self.expired: str | None = None  # "idle" or "hard" once this clock cancelled the read
        deadline = self._deadline()
        if deadline is not None:
            self._handle = loop.call_at(deadline, self._fire)

    def _deadline(self) -> float | None:
        if self._idle is None:
            return self._hard
        idle_at = self.last_data + self._idle
        return idle_at if self._hard is None else min(idle_at, self._hard)

    def begin_read(self) -> bool:
        """Mark the start of a read; True when the whole-answer limit has already passed."""
        task = asyncio.current_task()
        if task is not self._task:  # the generator may be driven by another task than last time
            self._task = task
            self._cancelling = task.cancelling() if task is not None else 0
        self.reading = True
        if self._overdue:
            self._overdue = False
            if self._hard is not None and self._loop.time() >= self._hard:
                self.expired = "hard"  # even if data is waiting: an endless answer must end
                return True
            self._handle = self._loop.call_soon(self._fire)
        return False

    def _fire(self) -> None:
        self._handle = None
        deadline = self._deadline()
        if deadline is None:
            return
        now = self._loop.time()
        if deadline > now:  # data arrived since the timer was set
            self._handle = self._loop.call_at(deadline, self._fire)
        elif self.reading and self._task is not None:
            self.expired = "hard" if self._hard is not None and now >= self._hard else "idle"
            self._task.cancel()
        else:
            self._overdue = True

    def timed_out(self) -> bool:
        """After a CancelledError in a read: True if this clock caused it (and the cancel is undone)."""
        self.reading = False
        if self.expired is None or self._task is None:
            return False
        return self._task.uncancel() <= self._cancelling

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class AsyncErnie:
    """Async ERNIE client for every surface; runs on the caller's event loop.

    ``stream()`` returns an async iterator of `StreamEvent`s (use ``async for`` / ``async with``);
    ``await chat()`` returns a `Reply`.
    """

    def __init__(
        self,
        provider: str | None = None,
        *,
        model: str | None = None,
        api_key: str | None = None,
        secret_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        stream_idle_timeout: float | None = 60.0,
        max_stream_seconds: float | None = 600.0,
        max_retries: int = 2,
        max_concurrency: int = 8,
        rpm: int | None = None,
        tpm: int | None = None,
        rate_limit_backend: str | None = None,
        cassette: str | None = None,
    ) -> None:
        install_log_redaction()
        for secret in (api_key, secret_key):
            if secret:
                register_secret(secret)
        if cassette is not None and provider is None:
            provider = "replay"
        env = environment()  # the process env over .env, read once for the config and the recorder
        self._config: ProviderConfig = resolve_config(
            provider, model=model, api_key=api_key, secret_key=secret_key, base_url=base_url, env=env
        )
        if cassette is not None:
            extra = dict(self._config.extra)
            extra["ERNIE_CASSETTE"] = str(cassette)
            extra.setdefault("ERNIE_CASSETTE_MODE", "replay")
            from dataclasses import replace

            self._config = replace(self._config, extra=extra)
        for secret in self._config.secrets:
            register_secret(secret)
        self._provider: HTTPProvider | DirectProvider = make_provider(self._config)
        self._recorder = _maybe_recorder(self._config, env)
        self.timeout = timeout
        self.stream_idle_timeout = stream_idle_timeout
        self.max_stream_seconds = max_stream_seconds
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self._rate_limiter: RateLimiter | None = make_rate_limiter(rpm, tpm, rate_limit_backend)
        self._resources: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopResources] = (
            weakref.WeakKeyDictionary()
        )
        self._ssl: ssl.SSLContext | None = None
        self._aiohttp_pool = False  # see with_own_pool()
        if self._config.auto_selected and self._config.provider == "local":
            from ..local_notice import announce_local

            announce_local(self._config.model)

    # -- public ----------------------------------------------------------------------------------

    @property
    def provider(self) -> str:
        return self._config.provider

    @property
    def model(self) -> str | None:
        # local and replay know their model name only from the provider (the GGUF file, the cassette)
        return self._config.model or self._provider.model

    @property
    def base_url(self) -> str | None:
        return self._config.base_url

    @property
    def config(self) -> ProviderConfig:
        return self._config

    def __repr__(self) -> str:
        # never the key: ProviderConfig keeps secrets out of its repr too
        return f"{type(self).__name__}(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r})"

    def stream(
        self,
        prompt_or_messages: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        **extra: Any,
    ) -> AsyncStream:
        """Stream an answer as `StreamEvent`s. Not awaited: ``async with client.stream(...) as s``."""
        messages = normalize_messages(prompt_or_messages, system)
        params = {"model": model, "temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, **extra}
        self.check_params(params)
        return AsyncStream(self, messages, params)

    async def chat(
        self,
        prompt_or_messages: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        **extra: Any,
    ) -> Reply:
        """The whole answer as a `Reply` (streamed underneath, so limits and retries are the same)."""
        async with self.stream(prompt_or_messages, model=model, system=system, temperature=temperature,
                               top_p=top_p, max_tokens=max_tokens, **extra) as s:
            async for _ in s:
                pass
        assert s.reply is not None
        return s.reply

    async def map(self, prompts_or_template: Any, rows: Any = None, **kwargs: Any) -> Any:
        """Run many prompts with bounded concurrency; see `ernie_widget.batch`."""
        from ..batch import amap

        return await amap(self, prompts_or_template, rows, **kwargs)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise BadRequestError for request parameters that are out of range for this client's surface
        (ERNIE takes temperature in (0, 1]; OpenAI-compatible servers in [0, 2]), before anything is sent."""
        _validate_params(params)
        if isinstance(self._provider, HTTPProvider):
            self._provider.check_params(params)

    def with_own_pool(self, max_concurrency: int, *, aiohttp: bool = False) -> AsyncErnie:
        """A client that shares this one's provider, credentials, token cache and rate limits, with a pool of
        its own sized for ``max_concurrency`` requests (close it with `aclose`).

        ``aiohttp=True`` sends its chat requests over aiohttp (see `aiohttp_sender`): ~4x less CPU per request
        than httpx2's own pool, which matters for many small unstreamed requests such as batch rows.
        """
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency!r}")
        sibling = copy.copy(self)
        sibling.max_concurrency = max_concurrency
        sibling._resources = weakref.WeakKeyDictionary()
        sibling._aiohttp_pool = aiohttp
        return sibling

    async def aclose(self) -> None:
        """Close this loop's connection pool (pools of other loops close with their loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        res = self._resources.pop(loop, None)
        if res is not None:
            await res.aclose()
        if isinstance(self._provider, DirectProvider):
            await self._provider.aclose()

    async def __aenter__(self) -> AsyncErnie:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals -------------------------------------------------------------------------------

    def _read_guard(self) -> float:
        """The per-read timeout of a stream: between chunks the idle clock (_StreamClock) is the real limit,
        and this only backs it up, on either HTTP stack."""
        return max(self.timeout, self.stream_idle_timeout or 0) + 5

    def _loop_resources(self) -> _LoopResources:
        loop = asyncio.get_running_loop()
        res = self._resources.get(loop)
        if res is None:
            import httpx2

            if self._ssl is None:
                self._ssl = _ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
            max_connections = max(self.max_concurrency * 2, 16)
            http = httpx2.AsyncClient(
                timeout=httpx2.Timeout(self.timeout, read=self._read_guard()),
                limits=httpx2.Limits(max_connections=max_connections,
                                     max_keepalive_connections=max(self.max_concurrency, 8)),
                headers={"Accept-Encoding": "gzip", "User-Agent": USER_AGENT},
                verify=self._ssl,
                trust_env=True,
            )
            res = _LoopResources(http, self.max_concurrency)
            if self._aiohttp_pool:
                from .aiohttp_sender import AiohttpSender

                res.aiohttp = AiohttpSender(max_connections=max_connections, verify=self._ssl)
            self._resources[loop] = res
        return res

    async def _events(self, messages: list[Message], params: dict[str, Any], state: StreamState,
                      concurrency: asyncio.Semaphore | None = None,
                      stream: bool = True) -> AsyncGenerator[StreamEvent, None]:
        provider = self._provider
        res = self._loop_resources()
        sem = concurrency or res.semaphore
        async with sem:
            if isinstance(provider, DirectProvider):
                # aclosing: a Stop reaches the provider at once, not when the generator is collected
                async with contextlib.aclosing(self._direct_events(provider, messages, params, state)) as direct:
                    async for ev in direct:
                        yield ev
                return
            # only a rate limiter needs the estimate (it walks every message: not for nothing per batch row)
            estimate = 0
            if self._rate_limiter is not None:
                estimate = estimate_tokens(messages) + int(params.get("max_tokens") or 0)
            attempt = 0
            reauthed = False
            await provider.authenticate(res.http)
            while True:
                charged = False
                if self._rate_limiter is not None:
                    await self._rate_limiter.acquire(estimate)
                    charged = True
                try:
                    async with contextlib.aclosing(
                        self._attempt(provider, res, messages, dict(params), state, stream)
                    ) as attempt_events:
                        async for ev in attempt_events:
                            yield ev
                except ErnieError as err:
                    if charged and self._rate_limiter is not None and not state.started:
                        self._rate_limiter.reconcile(estimate, 0)
                    if not state.started and not reauthed and provider.needs_reauth(err.code):
                        reauthed = True  # v1 110/111: refresh the token once; not counted as a retry
                        await provider.authenticate(res.http, force=True)
                        continue
                    if state.started or not err.retryable or attempt >= self.max_retries:
                        raise state.fail(err) from None
                    delay = _backoff(attempt, err.retry_after)
                    attempt += 1
                    state.retries += 1
                    logger.info("retrying after %s (attempt %d, %.2fs)", type(err).__name__, attempt, delay)
                    await asyncio.sleep(delay)
                    continue
                if charged and self._rate_limiter is not None and state.usage is not None:
                    self._rate_limiter.reconcile(estimate, state.usage.total_tokens)
                return

    async def _direct_events(self, provider: DirectProvider, messages: list[Message], params: dict[str, Any],
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
                    if ev.model:
                        state.model = ev.model
                    if ev.request_id:
                        state.request_id = ev.request_id
                    yield ev
        except ErnieError as err:
            raise state.fail(err) from None

    async def _attempt(self, provider: HTTPProvider, res: _LoopResources, messages: list[Message],
                       params: dict[str, Any], state: StreamState,
                       stream: bool = True) -> AsyncGenerator[StreamEvent, None]:
        import httpx2

        req = provider.build_request(messages, params, stream=stream)
        secrets = Secrets(provider.secrets())
        # streamed: `timeout` covers connecting and the first byte; unstreamed (batch rows), the response
        # head arrives only with the whole answer, so the answer's own limit applies
        first_byte = self.timeout if stream else max(self.timeout, self.max_stream_seconds or 0)
        response: httpx2.Response | AiohttpResponse
        try:
            async with asyncio.timeout(first_byte):
                if res.aiohttp is not None:
                    read = self._read_guard() if stream else first_byte
                    response = await res.aiohttp.send(req.method, req.url, json=req.json, headers=req.headers,
                                                      params=req.params, connect_timeout=self.timeout,
                                                      read_timeout=read)
                else:
                    http = res.http
                    timeout = httpx2.USE_CLIENT_DEFAULT if stream else httpx2.Timeout(self.timeout, read=first_byte)
                    # no local holds the httpx request: its repr shows the URL, which carries v1's
                    # access_token, and tracebacks that print locals (IPython's verbose mode, error
                    # trackers) would show it
                    response = await http.send(http.build_request(req.method, req.url, json=req.json,
                                                                  headers=req.headers, params=req.params or None,
                                                                  timeout=timeout),
                                               stream=True)
        except TimeoutError:
            raise APITimeoutError(
                f"{self.timeout:g} 秒内未收到响应 / no response within {self.timeout:g}s"
            ) from None
        except httpx2.TimeoutException as exc:
            raise APITimeoutError(f"连接超时 / timed out connecting: {redact(str(exc), secrets)}") from None
        except httpx2.HTTPError as exc:
            raise APIConnectionError(
                f"无法连接 / could not connect to {self.base_url}: {redact(str(exc) or type(exc).__name__, secrets)}"
            ) from None
        try:
            request_id = response.headers.get("x-baidu-request-id") or response.headers.get("x-request-id")
            if request_id:
                state.request_id = request_id
            ctype = response.headers.get("content-type", "")
            if response.status_code >= 400 or "text/event-stream" not in ctype:
                async for ev in self._non_stream_body(provider, response, state, secrets):
                    yield ev
                return
            async for ev in self._read_stream(provider, response, state, secrets):
                yield ev
        finally:
            await response.aclose()

    async def _non_stream_body(self, provider: HTTPProvider, response: httpx2.Response | AiohttpResponse,
                               state: StreamState,
                               secrets: tuple[str, ...]) -> AsyncIterator[StreamEvent]:
        """A JSON (or other) body where a stream was asked for: an error, or a whole answer."""
        import json

        import httpx2

        body = bytearray()
        try:
            async with contextlib.aclosing(response.aiter_bytes()) as parts:
                async for part in parts:
                    body += part
                    if len(body) > 4 * MAX_EVENT_BYTES:
                        err = IncompleteStreamError(
                            f"响应超过 {4 * MAX_EVENT_BYTES // 2**20} MiB / the response body exceeded "
                            f"{4 * MAX_EVENT_BYTES // 2**20} MiB", status_code=response.status_code)
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
            raise error_from_body(_redact_obj(err, secrets), status=status if status >= 400 else None,
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
        for ev in self._chunk_events(chunk, state):
            yield ev
        for ev in self._end_events(state):
            yield ev

    async def _read_stream(self, provider: HTTPProvider, response: httpx2.Response | AiohttpResponse,
                           state: StreamState,
                           secrets: tuple[str, ...]) -> AsyncIterator[StreamEvent]:
        import httpx2

        splitter = LineSplitter(MAX_EVENT_BYTES)
        loop = asyncio.get_running_loop()
        hard = None
        if self.max_stream_seconds is not None:  # started_at is time.monotonic(); convert to loop time
            hard = loop.time() + (state.started_at + self.max_stream_seconds - time.monotonic())
        clock = _StreamClock(loop, self.stream_idle_timeout, hard)
        byte_iter = response.aiter_bytes()
        next_bytes = byte_iter.__aiter__().__anext__
        feed = splitter.feed
        chunk_events = self._chunk_events
        parse = provider.parse_data
        done = eof = False
        try:
            while not done:
                if clock.begin_read():
                    raise self._stream_timeout(clock)
                try:
                    lines = feed(await next_bytes())
                except StopAsyncIteration:
                    eof = True
                    lines = splitter.flush()  # a last line without its newline still counts
                except asyncio.CancelledError:
                    if clock.timed_out():
                        raise self._stream_timeout(clock) from None
                    raise
                except httpx2.ReadTimeout:
                    raise APITimeoutError(f"读取超时 / read timed out after {self.timeout:g}s") from None
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
                        raise error_from_body(_redact_obj(err, secrets), request_id=state.request_id)
                    if not isinstance(obj, dict):
                        raise IncompleteStreamError(f"无法识别的流数据 / unexpected stream data: {str(obj)[:80]!r}")
                    err = error_in(obj)
                    if err is not None:
                        raise error_from_body(_redact_obj(err, secrets), request_id=state.request_id)
                    clock.last_data = loop.time()  # comments (keep-alives) do not count as data
                    state.chunks += 1
                    chunk = parse(obj)
                    for ev in chunk_events(chunk, state):
                        yield ev
                    if chunk.is_end:
                        done = True
                        break
                if eof:
                    break
            if done and not eof:
                # before the byte iterator is closed below: read the chunked terminator so the
                # connection goes back to the pool
                await _drain_tail(next_bytes)
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
        for ev in self._end_events(state):
            yield ev

    def _stream_timeout(self, clock: _StreamClock) -> APITimeoutError:
        if clock.expired == "hard":
            return APITimeoutError(
                f"回答超过 {self.max_stream_seconds:g} 秒上限 / the answer exceeded "
                f"max_stream_seconds={self.max_stream_seconds:g}"
            )
        idle = self.stream_idle_timeout
        return APITimeoutError(f"{idle:g} 秒没有收到数据 / no data for {idle:g}s (stream_idle_timeout)")

    def _chunk_events(self, chunk: Chunk, state: StreamState) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        rid = chunk.request_id
        if rid and not state.request_id:
            state.request_id = rid
        if chunk.model:
            state.model = chunk.model
        if chunk.safety is not None and chunk.safety != state.safety:
            state.safety = chunk.safety
            events.append(StreamEvent("safety", safety=chunk.safety, request_id=state.request_id))
            if chunk.safety.flag == 3:
                raise ContentFilterError(
                    "内容因安全原因被拦截 / the answer was blocked by ERNIE's safety system",
                    code="flag_3", request_id=state.request_id,
                )
        if chunk.reasoning:
            state.reasoning.append(chunk.reasoning)
            events.append(_content_event("reasoning", chunk.reasoning, state.request_id))
        if chunk.text:
            state.text.append(chunk.text)
            events.append(_content_event("text", chunk.text, state.request_id))
        if (chunk.reasoning or chunk.text) and not state.started:
            state.started = True
            state.first_at = time.monotonic()
        if chunk.search_results:
            state.results = chunk.search_results
            events.append(StreamEvent("search_results", results=chunk.search_results, request_id=state.request_id))
        if chunk.usage is not None:
            state.usage = chunk.usage
        if chunk.finish_reason:
            state.finish_reason = chunk.finish_reason
        if chunk.truncated:
            state.truncated = True
        return events

    def _end_events(self, state: StreamState) -> list[StreamEvent]:
        if state.finish_reason is None:
            state.finish_reason = "length" if state.truncated else "stop"
        events = []
        if state.usage is not None:
            events.append(StreamEvent("usage", usage=state.usage, request_id=state.request_id, model=state.model))
        events.append(StreamEvent("finish", finish_reason=state.finish_reason, request_id=state.request_id,
                                  model=state.model))
        return events


_new_object = object.__new__
_set_field = object.__setattr__
_EVENT_DEFAULTS = tuple((f.name, f.default) for f in dataclasses.fields(StreamEvent)
                        if f.name not in ("type", "text", "request_id"))


def _content_event(kind: EventType, text: str, request_id: str | None) -> StreamEvent:
    """A text/reasoning event, built without the frozen dataclass __init__.

    Frozen __init__ goes through a keyword call and eight global lookups; this runs for every chunk
    and is ~40 % cheaper. Every field is set (the others to their defaults), so the event is complete.
    """
    ev = _new_object(StreamEvent)
    _set_field(ev, "type", kind)
    _set_field(ev, "text", text)
    _set_field(ev, "request_id", request_id)
    for name, default in _EVENT_DEFAULTS:
        _set_field(ev, name, default)
    return ev


async def _drain_tail(next_bytes: Callable[[], Awaitable[bytes]], limit: int = 65536, wait: float = 0.05) -> None:
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


def _redact_obj(err: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(err, dict):
        return {k: redact(v, secrets) if isinstance(v, str) else v for k, v in err.items()}
    return err


def _validate_params(params: Mapping[str, Any]) -> None:
    t = params.get("temperature")
    if t is not None and not (0 <= t <= 2):
        raise BadRequestError(f"temperature 超出范围 / temperature must be within [0, 2], got {t}")
    p = params.get("top_p")
    if p is not None and not (0 <= p <= 1):
        raise BadRequestError(f"top_p 超出范围 / top_p must be within [0, 1], got {p}")
    m = params.get("max_tokens")
    if m is not None and (not isinstance(m, int) or m < 1):
        raise BadRequestError(f"max_tokens 必须是正整数 / max_tokens must be a positive integer, got {m!r}")


def _maybe_recorder(config: ProviderConfig, env: Mapping[str, str]) -> Any:
    """A cassette recorder when ERNIE_CASSETTE_MODE=record (any provider but replay itself)."""
    if config.provider == "replay":
        return None
    if env.get("ERNIE_CASSETTE") and env.get("ERNIE_CASSETTE_MODE") == "record":
        from .providers.replay import CassetteRecorder

        return CassetteRecorder(env["ERNIE_CASSETTE"])
    return None


class AsyncStream:
    """An answer being streamed: ``async for event in stream``; ``await stream.close()``; ``.reply`` at the end."""

    def __init__(self, client: AsyncErnie, messages: list[Message], params: dict[str, Any],
                 concurrency: asyncio.Semaphore | None = None, *, stream: bool = True) -> None:
        trimmed_messages, trimmed = trim_to_limit(messages, params.get("model") or client.model,
                                                  int(params.get("max_tokens") or 0))
        client._provider.check_messages(trimmed_messages)
        self.messages = trimmed_messages
        self.params = params
        self.state = StreamState(client.provider, params.get("model") or client.model, trimmed)
        self.reply: Reply | None = None
        self._client = client
        self._gen: AsyncIterator[StreamEvent] | None = None
        self._concurrency = concurrency
        self._stream = stream  # False: one JSON answer (cheaper for batch rows), same events and errors
        self._closed = False

    @property
    def partial_text(self) -> str:
        return self.state.partial_text

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._closed:
            raise StopAsyncIteration
        if self._gen is None:
            self._gen = self._client._events(self.messages, self.params, self.state, self._concurrency,
                                             self._stream)
            if self._client._recorder is not None:
                self._gen = self._client._recorder.wrap(self._gen, self.messages, self.params, self._client)
        try:
            return await self._gen.__anext__()
        except StopAsyncIteration:
            self._finish()
            raise
        except ErnieError as err:
            self._closed = True
            self.state.fail(err)
            _log_request(self.state, err)
            raise

    def _finish(self) -> None:
        if self.reply is None:
            self.reply = self.state.reply()
            _log_request(self.state, None)
        self._closed = True

    async def close(self) -> None:
        """Stop the answer: closes the HTTP response at once."""
        self._closed = True
        gen = self._gen
        if gen is not None:
            await gen.aclose()  # type: ignore[attr-defined]

    aclose = close

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _log_request(state: StreamState, err: ErnieError | None) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    reply = state.reply()
    record = {"provider": state.provider, "model": state.model, "request_id": state.request_id,
              **reply.metrics.to_dict(), "usage": reply.usage.to_dict() if reply.usage else None,
              "finish_reason": reply.finish_reason, "error": type(err).__name__ if err else None}
    logger.info("request %s", record, extra={"ernie_metrics": record})
