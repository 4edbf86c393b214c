"""Running a batch: rows on a pool of their own, bounded concurrency, per-row retries, and the two entry points."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from ..client.background import in_background_loop
from ..client.errors import ErnieError
from ..client.events import Reply
from ..client.handoff import Handoff, Signal
from ..client.limits import MemoryRateLimiter, RateLimiter
from ..client.map_options import MAP_DEFAULTS, MapOptions
from ..client.messages import estimate_tokens
from ..client.retry import backoff
from ..client.structured import StructuredOutputError, schema_spec
from ..client.transport import resolve_transport

if TYPE_CHECKING:
    from ..client import AsyncErnie, AsyncStream
    from ..client.sync import Ernie

from .cache import RowCache, RowStore
from .jobs import Job, build_jobs, cache_key, is_pandas_frame
from .progress import REFRESH_SECONDS, Progress
from .results import (
    ERROR_COLUMN,
    FIELD_PREFIX,
    TEXT_COLUMN,
    TOKENS_COLUMN,
    BatchInterrupted,
    BatchResult,
    BatchRow,
    BatchRowError,
    describe_error,
)


class _Batch:
    """One batch: prepared in the caller's thread, executed on an event loop."""

    def __init__(self, client: AsyncErnie, prompts_or_template: Any, rows: Any, options: Mapping[str, Any], *,
                 limiter: RateLimiter | None = None, pooled: bool = False) -> None:
        # limiter= and pooled=: a cluster worker (cluster.py) brings the shared Redis limiter and its
        # process-wide pooled client, instead of a limiter and a pool per batch
        o = {**MAP_DEFAULTS, **options}
        model, system, concurrency = o.pop("model"), o.pop("system"), o.pop("concurrency")
        rpm, tpm, progress, cache = o.pop("rpm"), o.pop("tpm"), o.pop("progress"), o.pop("cache")
        on_error, namespace, row_retries = o.pop("on_error"), o.pop("namespace"), o.pop("row_retries")
        transport = o.pop("transport")
        params = o  # the rest: request parameters (temperature, max_tokens, …)
        if on_error not in ("keep", "raise"):
            raise ValueError(f"on_error must be 'keep' or 'raise', not {on_error!r}")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, not {concurrency!r}")
        self.client = client
        self.params: dict[str, Any] = {"model": model, **params}
        client.check_params(self.params)  # a bad temperature fails the call, not every row
        # with schema=, every row is validated into BatchRow.parsed and a DataFrame gains a column per field
        self.schema = None if params.get("schema") is None else schema_spec(params["schema"])
        self.concurrency = concurrency
        resolve_transport(transport, "batch")  # a bad name fails the call, before any row
        self.transport = transport
        self.limiter: RateLimiter | None = limiter if limiter is not None else (
            MemoryRateLimiter(rpm, tpm) if rpm or tpm else None)
        self.pooled = pooled
        self.raise_on_error = on_error == "raise"
        self.row_retries = max(0, row_retries)
        self.jobs = build_jobs(prompts_or_template, rows, system, namespace)
        self.results: list[BatchRow | None] = [None] * len(self.jobs)
        self.finished = threading.Event()  # set once every row task has ended and the cache is closed
        self._estimate_extra = int(self.params.get("max_tokens") or 0)
        self.cache: RowStore | None = None
        self.pending: deque[Job] = deque()
        try:
            self._load_cache(cache)
            done = sum(r is not None for r in self.results)
            self.progress = Progress(len(self.jobs), done, progress)
        except BaseException:
            if self.cache is not None:
                self.cache.close()
            raise

    def _load_cache(self, path: str | Path | RowStore | None) -> None:
        model = self.params.get("model") or self.client.model
        if path is not None:
            self.cache = path if isinstance(path, RowStore) else RowCache(path)
            # a schema is keyed by its JSON form: a changed model class is a different request
            keyed = self.params if self.schema is None else {**self.params, "schema": self.schema.schema}
            for job in self.jobs:
                if job.messages is not None:
                    job.key = self.cache.row_key(job.index, cache_key(model, keyed, job.messages))
            found = self.cache.get_many([j.key for j in self.jobs if j.key])
            for job in self.jobs:
                hit = found.get(job.key) if job.key else None
                if hit is not None:
                    parsed = None if self.schema is None else self.schema.parse(Reply(text=hit[0])).parsed
                    self.results[job.index] = BatchRow(job.index, job.prompt, hit[0], hit[1], None, cached=True,
                                                       parsed=parsed)
        for job in self.jobs:
            if self.results[job.index] is None:
                self.pending.append(job)

    def partial(self) -> BatchResult:
        return BatchResult([r for r in self.results if r is not None])

    def result(self) -> BatchResult:
        assert all(r is not None for r in self.results)
        return BatchResult([r for r in self.results if r is not None])

    async def execute(self) -> BatchResult:
        """Run every pending row; the cache is closed and `finished` set however this ends."""
        # Rows are many small unstreamed requests: a pool of their own, sized for the batch (a narrower pool
        # would queue rows inside the HTTP library), on aiohttp when installed (a quarter of httpx2's CPU per
        # request). It shares the client's provider, credentials, token cache and rate limits.
        client = self.client if self.pooled else self.client.for_concurrency(self.concurrency,
                                                                               transport=self.transport)
        workers: list[asyncio.Task[None]] = []
        try:
            sem = asyncio.Semaphore(self.concurrency)
            n = min(self.concurrency, len(self.pending))
            workers = [asyncio.create_task(self._worker(client, sem)) for _ in range(n)]
            if workers:
                done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    exc = None if task.cancelled() else task.exception()
                    if exc is not None:
                        raise exc
            return self.result()
        finally:
            for task in workers:
                task.cancel()
            if workers:
                # the rows' streams close their HTTP responses as they unwind
                await asyncio.gather(*workers, return_exceptions=True)
            try:
                if client is not self.client:
                    await client.aclose()
            finally:
                if self.cache is not None:
                    self.cache.close()
                self.finished.set()

    async def _worker(self, client: AsyncErnie, sem: asyncio.Semaphore) -> None:
        pending = self.pending
        while pending:
            job = pending.popleft()
            row = await self._run_row(client, sem, job)
            self.results[job.index] = row
            if row.error is None and self.cache is not None and job.key:
                assert row.text is not None
                self.cache.put(job.key, row.text, row.usage, job.prompt)
            self.progress.row_done(row)
            if row.error is not None and self.raise_on_error:
                raise BatchRowError(job.index, job.prompt, row.error, self.partial())

    async def _run_row(self, client: AsyncErnie, sem: asyncio.Semaphore, job: Job) -> BatchRow:
        if job.messages is None:
            assert job.error is not None
            return BatchRow(job.index, job.prompt, None, None, job.error)
        attempt = 0
        limiter = self.limiter
        estimate = 0 if limiter is None else estimate_tokens(job.messages) + self._estimate_extra
        while True:
            if limiter is not None:
                await limiter.acquire(estimate)
            # a row is all or nothing: one JSON answer costs far less CPU than a stream of events
            stream = client.unstreamed(job.messages, concurrency=sem, **self.params)
            try:
                try:
                    await _drain(stream)
                except StructuredOutputError as bad:  # one repair round trip, as chat() gives
                    stream = stream.repaired(bad)
                    await _drain(stream)
            except ErnieError as err:
                if err.retryable and attempt < self.row_retries:
                    attempt += 1
                    await asyncio.sleep(backoff(attempt, err))
                    continue
                return BatchRow(job.index, job.prompt, None, None, err)
            reply = stream.reply
            assert reply is not None
            if limiter is not None and reply.usage is not None:
                limiter.reconcile(estimate, reply.usage.total_tokens)
            return BatchRow(job.index, job.prompt, reply.text, reply.usage, None, parsed=reply.parsed)


async def _drain(stream: AsyncStream) -> None:
    async with stream:
        async for _ in stream:
            pass


def _output(batch: _Batch, rows: Any, result: BatchResult) -> Any:
    """A DataFrame for a DataFrame in, else the `BatchResult`."""
    if not is_pandas_frame(rows):
        return result
    import pandas as pd

    out = rows.copy()
    out[TEXT_COLUMN] = [r.text for r in result]
    out[ERROR_COLUMN] = [describe_error(r.error) for r in result]
    out[TOKENS_COLUMN] = pd.array([r.tokens for r in result], dtype="Int64")
    if batch.schema is not None:
        values = [batch.schema.field_values(r.parsed) for r in result]
        for name in batch.schema.fields:
            # ernie_<field>: never the frame's own column; pd.array infers a nullable dtype (Int64, string,
            # boolean, Float64) so a failed row is <NA> without turning a number column into objects
            out[f"{FIELD_PREFIX}{name}"] = _column([v[name] for v in values])
    return out


def _column(values: list[Any]) -> Any:
    import pandas as pd

    try:
        return pd.array(values)
    except (TypeError, ValueError):  # mixed or nested values: an object column
        return pd.array(values, dtype=object)


async def amap(client: AsyncErnie, prompts_or_template: Any, rows: Any = None,
               **options: Unpack[MapOptions]) -> Any:
    """``await aclient.map(...)``: see the module docstring. Runs on the caller's event loop."""
    batch = _Batch(client, prompts_or_template, rows, options)
    ticker = asyncio.create_task(_tick(batch.progress))
    try:
        result = await batch.execute()
    finally:
        ticker.cancel()
        batch.progress.close()
    return _output(batch, rows, result)


async def _tick(progress: Progress) -> None:
    while True:
        await asyncio.sleep(REFRESH_SECONDS)
        progress.refresh()


def map_sync(client: Ernie, prompts_or_template: Any, rows: Any = None, **options: Unpack[MapOptions]) -> Any:
    """``client.map(...)``: the batch runs on the private loop; this thread waits and draws the progress bar.

    A KeyboardInterrupt cancels the rows in flight, waits until their connections are closed, and raises
    `BatchInterrupted` with the finished rows.
    """
    if in_background_loop():
        raise RuntimeError("map() called from the ernie-widget loop thread; use `await client.aio.map(...)`")
    batch = _Batch(client.aio, prompts_or_template, rows, options)
    try:
        run: Handoff[None, BatchResult] = Handoff(lambda _channel: batch.execute())
    except BaseException:
        batch.progress.close()
        if batch.cache is not None:
            batch.cache.close()
        raise
    try:
        while run.get(timeout=REFRESH_SECONDS) is not Signal.DONE:
            batch.progress.refresh()
        result = run.result()
    except KeyboardInterrupt:
        run.cancel()
        batch.finished.wait(10.0)  # in-flight rows unwind and close their sockets
        raise BatchInterrupted(batch.partial()) from None
    finally:
        batch.progress.close()
    return _output(batch, rows, result)
