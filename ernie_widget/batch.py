"""`client.map`: run many prompts with bounded concurrency, retries per row, progress and a crash-safe cache.

    result = client.map(["你好", "Bonjour"])                          # a list of prompts
    df = client.map("把 {city} 翻译成英文", cities_df, cache="cities.sqlite")   # a template over a DataFrame
    result = await aclient.map(prompts, concurrency=32)              # the async twin

Rows, in order: a template's ``{column}`` fields come from the row, then from ``namespace`` (the magics pass
the user namespace); every other brace stays literal (`ernie_widget.interpolate`). A list of prompts or of
message lists is sent as is. A row that is a scalar (a list of strings, a Series) is ``{value}``.

What comes back:

- a pandas DataFrame in → a copy of it with three new columns (existing ones of the same name are replaced):
  ``ernie_text`` (the answer, None if the row failed), ``ernie_error`` ("ErrorType: message", None if it
  succeeded) and ``ernie_tokens`` (total tokens as reported, nullable Int64);
- anything else → a `BatchResult`: a list of `BatchRow(index, prompt, text, usage, error, cached)` in
  input order, with ``.texts``, ``.errors``, ``.usage_total`` and ``.to_pandas()``.

Failures: a row that fails with a retryable error (429, 5xx, a broken connection) is sent again up to
``row_retries`` (2) more times — on top of the client's own retries, which stop once text has arrived,
while a row's output is all or nothing. ``on_error="keep"`` records a row's error and carries on;
``on_error="raise"`` stops the batch and raises `BatchRowError` naming the row. A KeyboardInterrupt cancels
every row in flight (their connections are closed) and raises `BatchInterrupted` with ``.partial_result``.

``cache="path.sqlite"`` commits every successful row as it finishes (SQLite WAL, synchronous=NORMAL), keyed
by sha256(model, params, messages); running the same batch again — after a kernel restart or a crash —
sends only the rows that are missing.

Transport: rows are sent unstreamed on a connection pool of the batch's own, over aiohttp when it is
installed (the ``batch`` extra brings it; ~4x less CPU per request than httpx2's pool, which is what a
wide batch is bound by). ``transport="httpx2"`` keeps the default HTTP stack; either honours the proxy
settings in the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from .client.errors import ErnieError
from .client.events import Usage
from .client.limits import MemoryRateLimiter
from .client.messages import Message, estimate_tokens, normalize_messages, text_of
from .client.retry import row_backoff
from .client.transport import TransportName, resolve_transport

if TYPE_CHECKING:
    from .client import AsyncErnie
    from .client.sync import Ernie

__all__ = [
    "BatchInterrupted",
    "BatchResult",
    "BatchRow",
    "BatchRowError",
    "RowCache",
    "amap",
    "map_sync",
]

TEXT_COLUMN = "ernie_text"
ERROR_COLUMN = "ernie_error"
TOKENS_COLUMN = "ernie_tokens"

_REFRESH_SECONDS = 0.1  # progress: at most 10 updates a second (a notebook bar is a comm message each)


# ---------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One row's outcome. ``text`` is None when the row failed; ``cached`` when it came from the cache."""

    index: int
    prompt: str
    text: str | None
    usage: Usage | None = None
    error: ErnieError | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tokens(self) -> int | None:
        return None if self.usage is None else self.usage.total_tokens


class BatchResult(Sequence[BatchRow]):
    """The rows of a batch in input order (a read-only list of `BatchRow`)."""

    def __init__(self, rows: Sequence[BatchRow]) -> None:
        self._rows = list(rows)

    @overload
    def __getitem__(self, i: int) -> BatchRow: ...

    @overload
    def __getitem__(self, i: slice) -> BatchResult: ...

    def __getitem__(self, i: int | slice) -> BatchRow | BatchResult:
        if isinstance(i, slice):
            return BatchResult(self._rows[i])
        return self._rows[i]

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[BatchRow]:
        return iter(self._rows)

    @property
    def texts(self) -> list[str | None]:
        """Every row's answer, None where the row failed."""
        return [r.text for r in self._rows]

    @property
    def errors(self) -> dict[int, ErnieError]:
        """The failed rows: row index → error (empty when every row succeeded)."""
        return {r.index: r.error for r in self._rows if r.error is not None}

    @property
    def usage_total(self) -> Usage:
        """Tokens summed over every row that reported usage (cached rows included)."""
        p = c = t = 0
        for r in self._rows:
            if r.usage is not None:
                p += r.usage.prompt_tokens
                c += r.usage.completion_tokens
                t += r.usage.total_tokens
        return Usage(p, c, t)

    def to_pandas(self) -> Any:
        """A DataFrame indexed by row: ``prompt``, ``ernie_text``, ``ernie_error``, ``ernie_tokens``, ``cached``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "prompt": [r.prompt for r in self._rows],
                TEXT_COLUMN: [r.text for r in self._rows],
                ERROR_COLUMN: [_describe(r.error) for r in self._rows],
                TOKENS_COLUMN: pd.array([r.tokens for r in self._rows], dtype="Int64"),
                "cached": [r.cached for r in self._rows],
            },
            index=pd.Index([r.index for r in self._rows], name="row"),
        )

    def __repr__(self) -> str:
        failed = sum(1 for r in self._rows if r.error is not None)
        cached = sum(1 for r in self._rows if r.cached)
        return (f"BatchResult({len(self._rows)} rows, {failed} failed, {cached} cached, "
                f"{self.usage_total.total_tokens} tokens)")


class BatchRowError(ErnieError):
    """``on_error="raise"``: a row failed. ``.index``, ``.prompt``, ``.error`` (the cause), ``.partial_result``."""

    def __init__(self, index: int, prompt: str, error: ErnieError, partial_result: BatchResult) -> None:
        super().__init__(
            f"第 {index} 行失败 / row {index} failed: {error.message}",
            partial_text=error.partial_text, status_code=error.status_code, code=error.code,
            request_id=error.request_id, retry_after=error.retry_after,
        )
        self.index = index
        self.prompt = prompt
        self.error = error
        self.partial_result = partial_result


class BatchInterrupted(KeyboardInterrupt):
    """The batch was interrupted; ``.partial_result`` holds every row that finished (cached rows too)."""

    def __init__(self, partial_result: BatchResult) -> None:
        super().__init__(f"批处理已中断 / batch interrupted: {len(partial_result)} rows finished")
        self.partial_result = partial_result


def _describe(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------------------------------------------
# Inputs → jobs


@dataclass(slots=True)
class _Job:
    index: int
    prompt: str
    messages: list[Message] | None  # None: the row could not be built (error set)
    error: ErnieError | None = None
    key: str = ""


def _is_pandas_frame(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and type(obj).__module__.startswith("pandas")


def _row_mappings(rows: Any) -> list[Mapping[str, Any]]:
    """Each row as a mapping of template fields."""
    if _is_pandas_frame(rows):
        columns = [str(c) for c in rows.columns]
        return [dict(zip(columns, values, strict=True)) for values in rows.itertuples(index=False, name=None)]
    if hasattr(rows, "iter_rows") and hasattr(rows, "columns"):  # polars
        return list(rows.iter_rows(named=True))
    if isinstance(rows, str | bytes | Mapping):
        raise TypeError("rows 应为 DataFrame 或列表 / rows must be a DataFrame or a list of rows, "
                        f"not a {type(rows).__name__}")
    return [r if isinstance(r, Mapping) else {"value": r} for r in rows]


def _build_jobs(prompts_or_template: Any, rows: Any, system: str | None,
                namespace: Mapping[str, Any] | None) -> list[_Job]:
    items: list[Any]
    if isinstance(prompts_or_template, str):
        if rows is None:
            raise TypeError("模板需要 rows / a template needs rows: client.map(template, rows) "
                            "(or pass a list of prompts)")
        from .interpolate import interpolate

        missing: list[str] = []

        def warn(message: str) -> None:
            if message not in missing:
                missing.append(message)

        ns = namespace if namespace is not None else {}
        items = [interpolate(prompts_or_template, ns, row=row, warn=warn) for row in _row_mappings(rows)]
        for message in missing[:3]:
            print(message, file=sys.stderr)
    else:
        if rows is not None:
            raise TypeError("rows 只能与模板一起使用 / rows only go with a template string")
        if isinstance(prompts_or_template, Mapping) or not hasattr(prompts_or_template, "__iter__"):
            raise TypeError("需要提示列表或模板 / expected a list of prompts or a template string")
        items = list(prompts_or_template)
    jobs = []
    for i, item in enumerate(items):
        try:
            messages = normalize_messages(item, system)
        except ErnieError as err:
            prompt = item if isinstance(item, str) else repr(item)[:200]
            jobs.append(_Job(i, prompt, None, err))
            continue
        prompt = item if isinstance(item, str) else text_of(messages[-1]["content"])
        jobs.append(_Job(i, prompt, messages))
    return jobs


def cache_key(model: str | None, params: Mapping[str, Any], messages: Sequence[Message]) -> str:
    """sha256 over the model, the request parameters (unset ones dropped) and the messages."""
    payload = json.dumps(
        {"model": model, "params": {k: v for k, v in params.items() if v is not None and k != "model"},
         "messages": messages},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------------
# The cache


class RowCache:
    """Finished rows in SQLite: one row per cache key, committed as each batch row succeeds.

    WAL with synchronous=NORMAL: a commit survives the process being killed (it only waits for the OS,
    not the disk), and readers — another kernel on the same file — never block the writer.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit (isolation_level=None): every INSERT is its own transaction, committed at once.
        # check_same_thread=False: map_sync looks rows up in the caller's thread, then the private loop
        # writes; the two never overlap.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS ernie_rows (key TEXT PRIMARY KEY, text TEXT NOT NULL, usage TEXT, "
            "prompt TEXT, created REAL NOT NULL)"
        )

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, Usage | None]]:
        found: dict[str, tuple[str, Usage | None]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # SQLite's default limit on host parameters is 999+
            part = unique[start:start + 500]
            marks = ",".join("?" * len(part))
            for key, text, usage in self._db.execute(
                f"SELECT key, text, usage FROM ernie_rows WHERE key IN ({marks})", part
            ):
                found[key] = (text, Usage.from_dict(json.loads(usage)) if usage else None)
        return found

    def put(self, key: str, text: str, usage: Usage | None, prompt: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO ernie_rows (key, text, usage, prompt, created) VALUES (?, ?, ?, ?, ?)",
            (key, text, json.dumps(usage.to_dict()) if usage else None, prompt, time.time()),
        )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM ernie_rows").fetchone()[0])

    def close(self) -> None:
        self._db.close()


# ---------------------------------------------------------------------------------------------------
# Progress


_hinted = False


def _make_bar(total: int, initial: int) -> Any:
    global _hinted
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if not _hinted:
            _hinted = True
            print("提示 / hint: pip install 'ernie-widget[batch]' for a progress bar (tqdm)", file=sys.stderr)
        return None
    # initial=cached rows, so rows/s and the ETA measure only the rows actually sent
    return tqdm(total=total, initial=initial, desc="ernie", unit="row", mininterval=_REFRESH_SECONDS,
                dynamic_ncols=True, disable=False, leave=True)


class _Progress:
    """Counters written by the batch's loop; a bar refreshed from outside at most every 0.1 s."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self.done = initial
        self.tokens = 0
        self.failed = 0
        self._bar = _make_bar(total, initial) if enabled and total else None
        self._shown = initial
        self._postfix = ""

    def row_done(self, row: BatchRow) -> None:
        self.done += 1
        if row.usage is not None:
            self.tokens += row.usage.total_tokens
        if row.error is not None:
            self.failed += 1

    def _set_postfix(self, bar: Any) -> None:
        postfix = f"tokens={self.tokens}" + (f", failed={self.failed}" if self.failed else "")
        if postfix != self._postfix:
            self._postfix = postfix
            bar.set_postfix_str(postfix, refresh=False)

    def refresh(self) -> None:
        bar = self._bar
        if bar is None:
            return
        self._set_postfix(bar)
        delta = self.done - self._shown
        if delta:
            self._shown += delta
            bar.update(delta)  # tqdm prints only if mininterval has passed since its last print

    def close(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            self._set_postfix(bar)
            bar.n = self.done  # close() draws the final state once (red in a notebook if rows are missing)
            bar.close()


# ---------------------------------------------------------------------------------------------------
# Running


class _Batch:
    """One batch: prepared in the caller's thread, executed on an event loop."""

    def __init__(self, client: AsyncErnie, prompts_or_template: Any, rows: Any, *, model: str | None,
                 system: str | None, concurrency: int, rpm: int | None, tpm: int | None, progress: bool,
                 cache: str | Path | None, on_error: str, namespace: Mapping[str, Any] | None,
                 row_retries: int, transport: TransportName, params: dict[str, Any]) -> None:
        if on_error not in ("keep", "raise"):
            raise ValueError(f"on_error must be 'keep' or 'raise', not {on_error!r}")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, not {concurrency!r}")
        self.client = client
        self.params: dict[str, Any] = {"model": model, **params}
        client.check_params(self.params)  # a bad temperature fails the call, not every row
        self.concurrency = concurrency
        resolve_transport(transport, "batch")  # a bad name fails the call, before any row
        self.transport = transport
        self.limiter = MemoryRateLimiter(rpm, tpm) if rpm or tpm else None
        self.raise_on_error = on_error == "raise"
        self.row_retries = max(0, row_retries)
        self.jobs = _build_jobs(prompts_or_template, rows, system, namespace)
        self.results: list[BatchRow | None] = [None] * len(self.jobs)
        self.finished = threading.Event()  # set once every row task has ended and the cache is closed
        self._estimate_extra = int(self.params.get("max_tokens") or 0)
        self.cache: RowCache | None = None
        self.pending: deque[_Job] = deque()
        try:
            self._load_cache(cache)
            done = sum(r is not None for r in self.results)
            self.progress = _Progress(len(self.jobs), done, progress)
        except BaseException:
            if self.cache is not None:
                self.cache.close()
            raise

    def _load_cache(self, path: str | Path | None) -> None:
        model = self.params.get("model") or self.client.model
        if path is not None:
            self.cache = RowCache(path)
            for job in self.jobs:
                if job.messages is not None:
                    job.key = cache_key(model, self.params, job.messages)
            found = self.cache.get_many([j.key for j in self.jobs if j.key])
            for job in self.jobs:
                hit = found.get(job.key) if job.key else None
                if hit is not None:
                    self.results[job.index] = BatchRow(job.index, job.prompt, hit[0], hit[1], None, cached=True)
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
        client = self.client.for_concurrency(self.concurrency, transport=self.transport)
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

    async def _run_row(self, client: AsyncErnie, sem: asyncio.Semaphore, job: _Job) -> BatchRow:
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
                async with stream:
                    async for _ in stream:
                        pass
            except ErnieError as err:
                if err.retryable and attempt < self.row_retries:
                    attempt += 1
                    await asyncio.sleep(row_backoff(attempt, err.retry_after))
                    continue
                return BatchRow(job.index, job.prompt, None, None, err)
            reply = stream.reply
            assert reply is not None
            if limiter is not None and reply.usage is not None:
                limiter.reconcile(estimate, reply.usage.total_tokens)
            return BatchRow(job.index, job.prompt, reply.text, reply.usage, None)


def _output(batch: _Batch, rows: Any, result: BatchResult) -> Any:
    """A DataFrame for a DataFrame in, else the `BatchResult`."""
    if not _is_pandas_frame(rows):
        return result
    import pandas as pd

    out = rows.copy()
    out[TEXT_COLUMN] = [r.text for r in result]
    out[ERROR_COLUMN] = [_describe(r.error) for r in result]
    out[TOKENS_COLUMN] = pd.array([r.tokens for r in result], dtype="Int64")
    return out


# ---------------------------------------------------------------------------------------------------
# Public entry points


async def amap(
    client: AsyncErnie,
    prompts_or_template: Any,
    rows: Any = None,
    *,
    model: str | None = None,
    system: str | None = None,
    concurrency: int = 8,
    rpm: int | None = None,
    tpm: int | None = None,
    progress: bool = True,
    cache: str | Path | None = None,
    on_error: Literal["keep", "raise"] = "keep",
    namespace: Mapping[str, Any] | None = None,
    row_retries: int = 2,
    transport: Literal["auto", "httpx2", "aiohttp"] = "auto",
    **params: Any,
) -> Any:
    """``await aclient.map(...)``: see the module docstring. Runs on the caller's event loop."""
    batch = _Batch(client, prompts_or_template, rows, model=model, system=system, concurrency=concurrency,
                   rpm=rpm, tpm=tpm, progress=progress, cache=cache, on_error=on_error, namespace=namespace,
                   row_retries=row_retries, transport=transport, params=params)
    ticker = asyncio.create_task(_tick(batch.progress))
    try:
        result = await batch.execute()
    finally:
        ticker.cancel()
        batch.progress.close()
    return _output(batch, rows, result)


async def _tick(progress: _Progress) -> None:
    while True:
        await asyncio.sleep(_REFRESH_SECONDS)
        progress.refresh()


def map_sync(
    client: Ernie,
    prompts_or_template: Any,
    rows: Any = None,
    *,
    model: str | None = None,
    system: str | None = None,
    concurrency: int = 8,
    rpm: int | None = None,
    tpm: int | None = None,
    progress: bool = True,
    cache: str | Path | None = None,
    on_error: Literal["keep", "raise"] = "keep",
    namespace: Mapping[str, Any] | None = None,
    row_retries: int = 2,
    transport: Literal["auto", "httpx2", "aiohttp"] = "auto",
    **params: Any,
) -> Any:
    """``client.map(...)``: the batch runs on the private loop; this thread waits and draws the progress bar.

    A KeyboardInterrupt cancels the rows in flight, waits until their connections are closed, and raises
    `BatchInterrupted` with the finished rows.
    """
    from .client.background import in_background_loop, submit

    if in_background_loop():
        raise RuntimeError("map() called from the ernie-widget loop thread; use `await client.aio.map(...)`")
    batch = _Batch(client.aio, prompts_or_template, rows, model=model, system=system, concurrency=concurrency,
                   rpm=rpm, tpm=tpm, progress=progress, cache=cache, on_error=on_error, namespace=namespace,
                   row_retries=row_retries, transport=transport, params=params)
    try:
        future = submit(batch.execute())
    except BaseException:
        batch.progress.close()
        if batch.cache is not None:
            batch.cache.close()
        raise
    try:
        while True:
            try:
                result = future.result(timeout=_REFRESH_SECONDS)
                break
            except concurrent.futures.TimeoutError:
                batch.progress.refresh()
    except KeyboardInterrupt:
        future.cancel()
        batch.finished.wait(10.0)  # in-flight rows unwind and close their sockets
        raise BatchInterrupted(batch.partial()) from None
    finally:
        batch.progress.close()
    return _output(batch, rows, result)
