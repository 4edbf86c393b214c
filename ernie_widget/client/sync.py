"""`Ernie`: the thread-safe synchronous facade. The same async core runs on the private loop."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Unpack

from .async_client import AsyncErnie, AsyncStream
from .background import in_background_loop, run_sync
from .defaults import (
    CONNECT_TIMEOUT,
    MAX_CONCURRENCY,
    MAX_RETRIES,
    MAX_STREAM_SECONDS,
    STREAM_IDLE_TIMEOUT,
    TIMEOUT,
)
from .events import Reply, StreamEvent
from .handoff import Channel, Handoff, Signal
from .map_options import MapOptions
from .tool_options import ToolRunOptions, tool_loop
from .tool_runner import ToolEvents, ToolRun, run_tool_events

__all__ = ["Ernie", "Stream"]

_DONE = Signal.DONE


async def _pump(astream: AsyncStream, channel: Channel[StreamEvent]) -> None:
    """On the private loop: the stream's events into the channel; the HTTP response closes however it ends."""
    try:
        put, room = channel.put, channel.room
        async for ev in astream:
            if put(ev):
                await room()
    finally:
        await astream.close()


class Stream:
    """A synchronous iterator over an answer's `StreamEvent`s; ``close()`` or ``with`` stops it."""

    def __init__(self, astream: AsyncStream) -> None:
        self._astream = astream
        self._exhausted = False
        # the pump holds the channel, never this Stream: a stream dropped without close() is garbage, and
        # __del__ cancels the pump, releasing the HTTP response and the concurrency slot
        self._handoff: Handoff[StreamEvent, None] = Handoff(functools.partial(_pump, astream))

    @property
    def reply(self) -> Reply | None:
        return self._astream.reply

    @property
    def partial_text(self) -> str:
        return self._astream.partial_text

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self._astream.messages

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        if self._exhausted:
            raise StopIteration
        try:
            item = self._handoff.get()
        except KeyboardInterrupt:
            self.close()
            raise
        if item is _DONE:
            self._exhausted = True
            self._handoff.result()  # the stream's error, if it failed, is raised here, after its events
            raise StopIteration
        return item  # type: ignore[return-value]  # get() without a timeout never returns IDLE

    def close(self, timeout: float = 5.0) -> None:
        """Stop the answer and wait until its HTTP response is closed."""
        self._exhausted = True
        self._handoff.cancel(wait=timeout)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._handoff.cancel()
        except Exception:
            pass


class Ernie:
    """Synchronous ERNIE client for every surface; safe to share between threads.

    >>> client = Ernie()                       # provider from the environment, or the local model
    >>> for ev in client.stream("你好"):        # doctest: +SKIP
    ...     print(ev.text, end="")
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
        self._async = AsyncErnie(
            provider, model=model, api_key=api_key, secret_key=secret_key, base_url=base_url, timeout=timeout,
            connect_timeout=connect_timeout, stream_idle_timeout=stream_idle_timeout, max_stream_seconds=max_stream_seconds,
            max_retries=max_retries, max_concurrency=max_concurrency, rpm=rpm, tpm=tpm,
            rate_limit_backend=rate_limit_backend, cassette=cassette,
        )

    @property
    def aio(self) -> AsyncErnie:
        """The async core; use it only from the private loop (the widget and magics do)."""
        return self._async

    @property
    def provider(self) -> str:
        return self._async.provider

    @property
    def model(self) -> str | None:
        return self._async.model

    @property
    def base_url(self) -> str | None:
        return self._async.base_url

    @property
    def config(self) -> Any:
        return self._async.config

    def __repr__(self) -> str:
        return f"Ernie(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r})"

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
    ) -> Stream:
        """Stream an answer as `StreamEvent`s on the private loop; iterate, then read ``.reply``."""
        astream = self._async.stream(prompt_or_messages, model=model, system=system, temperature=temperature,
                                     top_p=top_p, max_tokens=max_tokens, tools=tools, tool_choice=tool_choice,
                                         parallel_tool_calls=parallel_tool_calls, schema=schema, **extra)
        return Stream(astream)

    def chat(
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
        """The whole answer as a `Reply`. A KeyboardInterrupt stops the request and closes the connection."""
        return run_sync(self._async.chat(prompt_or_messages, model=model, system=system, temperature=temperature,
                                         top_p=top_p, max_tokens=max_tokens, tools=tools, tool_choice=tool_choice,
                                         parallel_tool_calls=parallel_tool_calls, schema=schema, **extra))

    def stream_tools(self, prompt_or_messages: str | Sequence[Mapping[str, Any]], tools: Sequence[Any],
                     **options: Unpack[ToolRunOptions]) -> ToolEvents:
        """`run_tools` as events: each round's stream, then a ``tool_result`` event per call; ``.run`` at the end.
        The options are `ToolRunOptions` (tool_options.py)."""
        return run_tool_events(self, *tool_loop(prompt_or_messages, tools, options))

    def run_tools(self, prompt_or_messages: str | Sequence[Mapping[str, Any]], tools: Sequence[Any],
                  **options: Unpack[ToolRunOptions]) -> ToolRun:
        """Ask; run the calls the model asks for (in this thread, or where ``executor`` says); send the results
        back; repeat until it answers (at most ``max_rounds`` rounds of calls). Returns a `ToolRun`: the final
        reply, the history and every result. The options are `ToolRunOptions` (tool_options.py)."""
        events = self.stream_tools(prompt_or_messages, tools, **options)
        try:
            for _ in events:
                pass
        finally:
            events.close()
        assert events.run is not None
        return events.run

    def map(self, prompts_or_template: Any, rows: Any = None, **kwargs: Unpack[MapOptions]) -> Any:
        """Run many prompts with bounded concurrency and progress; see `ernie_widget.batch`."""
        from ..batch import is_dask_collection, map_dask, map_sync

        if is_dask_collection(prompts_or_template) or is_dask_collection(rows):  # a lazy Dask DataFrame back
            return map_dask(self, prompts_or_template, rows, **kwargs)
        return map_sync(self, prompts_or_template, rows, **kwargs)

    def close(self) -> None:
        """Close the connection pool on the private loop."""
        if not in_background_loop():
            run_sync(self._async.aclose())

    def __enter__(self) -> Ernie:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
