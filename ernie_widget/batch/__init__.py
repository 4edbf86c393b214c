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

A Dask DataFrame (or a Dask Bag of prompts) in → a lazy Dask DataFrame with the same new columns, each
partition a batch on a worker, one RPM/TPM budget and a resumable record through Redis (`batch.cluster`;
the ``cluster`` extra brings dask and distributed).
"""

from __future__ import annotations

from .cache import RowCache
from .cluster import is_dask_collection, map_dask
from .jobs import cache_key
from .results import (
    ERROR_COLUMN,
    TEXT_COLUMN,
    TOKENS_COLUMN,
    BatchInterrupted,
    BatchResult,
    BatchRow,
    BatchRowError,
)
from .runner import amap, map_sync

__all__ = [
    "ERROR_COLUMN",
    "TEXT_COLUMN",
    "TOKENS_COLUMN",
    "BatchInterrupted",
    "BatchResult",
    "BatchRow",
    "BatchRowError",
    "RowCache",
    "amap",
    "cache_key",
    "is_dask_collection",
    "map_dask",
    "map_sync",
]
