"""`AsyncErnie`, the async client, and `AsyncStream`, one answer being streamed.

The path of a request: `AsyncErnie.stream()` checks the parameters and returns an `AsyncStream`; iterating it
runs the request lifecycle (lifecycle.py: limits → auth → attempt → retry) on this client's pool for the running
loop (pool.py, transport.py); the response reader (reader.py) turns the body into `StreamEvent`s (state.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import ssl
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal, Unpack

from .config import ProviderConfig, environment, resolve_config
from .defaults import (
    CONNECT_TIMEOUT,
    MAX_CONCURRENCY,
    MAX_RETRIES,
    MAX_STREAM_SECONDS,
    STREAM_IDLE_TIMEOUT,
    TIMEOUT,
)
from .errors import BadRequestError, ErnieError
from .events import Reply, StreamEvent
from .lifecycle import request_events
from .limits import RateLimiter, make_rate_limiter
from .map_options import MapOptions
from .messages import Message, normalize_messages, trim_to_limit
from .pool import LoopPool, open_pool, ssl_context
from .providers import DirectProvider, HTTPProvider, make_provider
from .redact import install_log_redaction, register_secret
from .state import StreamState
from .structured import SchemaSpec, StructuredOutputError, prepare_schema
from .thinking import check_thinking
from .tool_options import ToolRunOptions, tool_loop
from .tool_runner import AsyncToolEvents, ToolRun, arun_tool_events
from .tools import prepare_tool_params
from .transport import TransportName, resolve_transport
from .web_search import prepare_web_search

logger = logging.getLogger("ernie_widget")

__all__ = ["AsyncErnie", "AsyncStream"]

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
        timeout: float = TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        stream_idle_timeout: float | None = STREAM_IDLE_TIMEOUT,
        max_stream_seconds: float | None = MAX_STREAM_SECONDS,
        max_retries: int = MAX_RETRIES,
        max_concurrency: int = MAX_CONCURRENCY,
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
        self.connect_timeout = connect_timeout
        self.stream_idle_timeout = stream_idle_timeout
        self.max_stream_seconds = max_stream_seconds
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self._rate_limiter: RateLimiter | None = make_rate_limiter(rpm, tpm, rate_limit_backend)
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPool] = weakref.WeakKeyDictionary()
        self._ssl: ssl.SSLContext | None = None
        self._aiohttp_pool = False  # see with_own_pool()
        if self._config.auto_selected and self._config.provider == "local":
            from .local_notice import announce_local

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
        tools: Sequence[Any] | None = None,
        tool_choice: Any = None,
        parallel_tool_calls: bool | None = None,
        schema: Any = None,
        **extra: Any,
    ) -> AsyncStream:
        """Stream an answer as `StreamEvent`s. Not awaited: ``async with client.stream(...) as s``."""
        messages, params, spec = self._request(prompt_or_messages, system, model=model, temperature=temperature,
                                               top_p=top_p, max_tokens=max_tokens, tools=tools,
                                               tool_choice=tool_choice, parallel_tool_calls=parallel_tool_calls,
                                               schema=schema, **extra)
        return AsyncStream(self, messages, params, schema=spec)

    async def chat(
        self,
        prompt_or_messages: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        tools: Sequence[Any] | None = None,
        tool_choice: Any = None,
        parallel_tool_calls: bool | None = None,
        schema: Any = None,
        **extra: Any,
    ) -> Reply:
        """The whole answer as a `Reply` (streamed underneath, so limits and retries are the same).

        With ``schema=`` (a pydantic model class or a JSON Schema dict) the answer is asked for as JSON, validated
        into ``Reply.parsed``, and an invalid answer gets one repair round trip before `StructuredOutputError`."""
        stream = self.stream(prompt_or_messages, model=model, system=system, temperature=temperature, top_p=top_p,
                             max_tokens=max_tokens, tools=tools, tool_choice=tool_choice,
                             parallel_tool_calls=parallel_tool_calls, schema=schema, **extra)
        try:
            return await _drain(stream)
        except StructuredOutputError as err:
            return await _drain(stream.repaired(err))

    def stream_tools(self, prompt_or_messages: str | Sequence[Mapping[str, Any]], tools: Sequence[Any],
                     **options: Unpack[ToolRunOptions]) -> AsyncToolEvents:
        """`run_tools` as events: each round's stream, then a ``tool_result`` event per call; ``.run`` at the end.
        The options are `ToolRunOptions` (tool_options.py)."""
        return arun_tool_events(self, *tool_loop(prompt_or_messages, tools, options))

    async def run_tools(self, prompt_or_messages: str | Sequence[Mapping[str, Any]], tools: Sequence[Any],
                        **options: Unpack[ToolRunOptions]) -> ToolRun:
        """Ask; run the calls the model asks for (on this loop, or where ``executor`` says); send the results back;
        repeat until it answers (at most ``max_rounds`` rounds of calls). Returns a `ToolRun`: the final reply,
        the history and every result. The options are `ToolRunOptions` (tool_options.py)."""
        events = self.stream_tools(prompt_or_messages, tools, **options)
        async for _ in events:
            pass
        assert events.run is not None
        return events.run

    async def map(self, prompts_or_template: Any, rows: Any = None, **kwargs: Unpack[MapOptions]) -> Any:
        """Run many prompts with bounded concurrency; see `ernie_widget.batch`."""
        from ..batch import amap, is_dask_collection, map_dask

        if is_dask_collection(prompts_or_template) or is_dask_collection(rows):  # a lazy Dask DataFrame back
            return map_dask(self, prompts_or_template, rows, **kwargs)
        return await amap(self, prompts_or_template, rows, **kwargs)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise BadRequestError for request parameters that are out of range for this client's surface
        (ERNIE takes temperature in (0, 1]; OpenAI-compatible servers in [0, 2]), before anything is sent."""
        _validate_params(params)
        if params.get("tools") and not self._provider.supports_tools:
            raise BadRequestError(self._provider.no_tools_reason())
        if isinstance(self._provider, HTTPProvider):
            self._provider.check_params(params)
        else:  # the local model would drop thinking parameters silently: refuse them as HTTP surfaces do
            check_thinking(self._provider.name, params.get("model") or self.model, params)

    def unstreamed(
        self,
        prompt_or_messages: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        tools: Sequence[Any] | None = None,
        tool_choice: Any = None,
        parallel_tool_calls: bool | None = None,
        schema: Any = None,
        concurrency: asyncio.Semaphore | None = None,
        **extra: Any,
    ) -> AsyncStream:
        """Like `stream`, but the answer is asked for unstreamed: one JSON body, with the same events, limits,
        retries and errors. Cheaper for many small all-or-nothing answers (batch rows). ``concurrency``
        replaces this client's own limit on requests in flight with a semaphore of the caller's."""
        messages, params, spec = self._request(prompt_or_messages, system, model=model, temperature=temperature,
                                               top_p=top_p, max_tokens=max_tokens, tools=tools,
                                               tool_choice=tool_choice, parallel_tool_calls=parallel_tool_calls,
                                               schema=schema, **extra)
        return AsyncStream(self, messages, params, concurrency, stream=False, schema=spec)

    def _request(self, prompt_or_messages: str | Sequence[Mapping[str, Any]], system: str | None,
                 **params: Any) -> tuple[list[Message], dict[str, Any], SchemaSpec | None]:
        """The messages, checked parameters and schema of one request (refused here, before anything is sent)."""
        messages = normalize_messages(prompt_or_messages, system)
        spec = prepare_schema(self.provider, params)
        if spec is not None:
            messages = spec.with_instruction(messages)
        for key in ("tools", "tool_choice", "parallel_tool_calls"):
            if params.get(key) is None:
                params.pop(key, None)  # absent, not null: cassette keys and request bodies stay as they were
        prepare_tool_params(params)
        prepare_web_search(self.provider, params.get("model") or self.model, params)
        self.check_params(params)
        return messages, params, spec

    def with_own_pool(self, max_concurrency: int, *, transport: Literal["httpx2", "aiohttp"] = "httpx2") -> AsyncErnie:
        """A client that shares this one's provider, credentials, token cache and rate limits, with a pool of
        its own sized for ``max_concurrency`` requests (close it with `aclose`).

        ``transport="aiohttp"`` sends its chat requests over aiohttp (transport_aiohttp.py): ~4x less CPU per
        request than httpx2's own pool, which matters for many small unstreamed requests such as batch rows.
        """
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency!r}")
        if transport not in ("httpx2", "aiohttp"):
            raise ValueError(f"transport must be 'httpx2' or 'aiohttp', not {transport!r}")
        sibling = copy.copy(self)
        sibling.max_concurrency = max_concurrency
        sibling._pools = weakref.WeakKeyDictionary()
        sibling._aiohttp_pool = transport == "aiohttp"
        return sibling

    def for_concurrency(self, concurrency: int, *, transport: TransportName = "auto",
                        extra: str = "batch") -> AsyncErnie:
        """The client to send ``concurrency`` requests at once with: this one when its pool already fits (or the
        provider runs in process and has no pool), else `with_own_pool` on the chosen transport. ``"auto"``
        means aiohttp when it is installed; ``extra`` names the install that brings it, for the error.

        A pool sized below the requests in flight would queue them inside the HTTP library, not on the
        semaphore where limits and Stop act. Close a returned client that is not this one with `aclose`.
        """
        name = resolve_transport(transport, extra)  # a bad name fails here, whatever the provider
        if not isinstance(self._provider, HTTPProvider):
            return self
        if name == "httpx2" and concurrency <= self.max_concurrency:
            return self
        return self.with_own_pool(max(concurrency, self.max_concurrency), transport=name)

    @contextlib.asynccontextmanager
    async def pooled(self, concurrency: int, *, transport: TransportName = "auto",
                     extra: str = "batch") -> AsyncIterator[AsyncErnie]:
        """``async with client.pooled(32) as c:`` — `for_concurrency`, closing its own pool (if any) at the end."""
        client = self.for_concurrency(concurrency, transport=transport, extra=extra)
        try:
            yield client
        finally:
            if client is not self:
                await client.aclose()

    async def aclose(self) -> None:
        """Close this loop's connection pool (pools of other loops close with their loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        pool = self._pools.pop(loop, None)
        if pool is not None:
            await pool.aclose()
        if isinstance(self._provider, DirectProvider):
            await self._provider.aclose()

    async def __aenter__(self) -> AsyncErnie:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals -------------------------------------------------------------------------------

    def _read_guard(self) -> float:
        """The per-read timeout of a stream: between chunks the idle clock (clock.py) is the real limit,
        and this only backs it up, on either HTTP stack."""
        return max(self.timeout, self.stream_idle_timeout or 0) + 5

    def _connect_timeout(self) -> float:
        """Seconds to open a connection: `connect_timeout`, never longer than `timeout`."""
        return min(self.connect_timeout, self.timeout)

    def _pool(self) -> LoopPool:
        """This client's pool on the running loop, opened on first use."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            if self._ssl is None:
                self._ssl = ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
            pool = self._pools[loop] = open_pool(timeout=self.timeout, connect_timeout=self._connect_timeout(),
                                                 read_timeout=self._read_guard(),
                                                 max_concurrency=self.max_concurrency,
                                                 aiohttp=self._aiohttp_pool, verify=self._ssl)
        return pool


async def _drain(stream: AsyncStream) -> Reply:
    async with stream as s:
        async for _ in s:
            pass
    assert s.reply is not None
    return s.reply


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
                 concurrency: asyncio.Semaphore | None = None, *, stream: bool = True,
                 schema: SchemaSpec | None = None) -> None:
        trimmed_messages, trimmed = trim_to_limit(messages, params.get("model") or client.model,
                                                  int(params.get("max_tokens") or 0))
        client._provider.check_messages(trimmed_messages)
        self.messages = trimmed_messages
        self.params = params
        self.state = StreamState(client.provider, params.get("model") or client.model, trimmed)
        self.reply: Reply | None = None
        self.schema = schema  # validated into reply.parsed at the end (structured.py)
        self._client = client
        self._gen: AsyncIterator[StreamEvent] | None = None
        self._concurrency = concurrency
        self._stream = stream  # False: one JSON answer (cheaper for batch rows), same events and errors
        self._closed = False

    @property
    def partial_text(self) -> str:
        return self.state.partial_text

    def repaired(self, error: StructuredOutputError) -> AsyncStream:
        """The one repair round trip of an answer that did not match its schema: the same request, plus the bad
        answer and what was wrong with it (same parameters, concurrency limit and streaming mode)."""
        assert self.schema is not None
        logger.info("the answer did not match %s; asking once more: %s", self.schema.name, error.problems[:3])
        return AsyncStream(self._client, self.schema.repair(self.messages, error), dict(self.params),
                           self._concurrency, stream=self._stream, schema=self.schema)

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._closed:
            raise StopAsyncIteration
        if self._gen is None:
            self._gen = request_events(self._client, self.messages, self.params, self.state, self._concurrency,
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
            reply = self.state.reply()
            _log_request(self.state, None)
            if self.schema is not None and not reply.tool_calls:
                self._closed = True
                self.reply = reply  # kept even when it does not validate: the error carries its text too
                reply = self.schema.parse(reply)  # StructuredOutputError: the caller's to handle or repair
            self.reply = reply
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
