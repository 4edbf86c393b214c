"""The options of `client.map` as a type, so IDEs and type checkers show them on `Ernie.map` / `AsyncErnie.map`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypedDict

__all__ = ["MAP_DEFAULTS", "MapOptions"]


class MapOptions(TypedDict, total=False):
    """Keyword options of ``client.map(template_or_prompts, rows, **options)`` (see `ernie_widget.batch`)."""

    #: the model for every row (default: the client's)
    model: str | None
    #: a system message for every row
    system: str | None
    #: rows in flight at once (default 8)
    concurrency: int
    #: requests and tokens per minute for this batch
    rpm: int | None
    tpm: int | None
    #: draw a progress bar (tqdm) (default True)
    progress: bool
    #: an SQLite file: finished rows are kept, a re-run sends only the missing ones
    cache: str | Path | None
    #: "keep" records a failed row and carries on; "raise" stops with BatchRowError
    on_error: Literal["keep", "raise"]
    #: where a template's {names} come from after the row's own fields
    namespace: Mapping[str, Any] | None
    #: extra attempts for a row that failed with a retryable error (default 2)
    row_retries: int
    #: "auto" (aiohttp when installed), "httpx2" or "aiohttp"
    transport: Literal["auto", "httpx2", "aiohttp"]
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    #: a pydantic model class or a JSON Schema dict: each row's answer is validated into BatchRow.parsed, and a
    #: DataFrame gains one column per field, named ernie_<field>
    schema: Any
    # -- a Dask DataFrame or Bag only (ernie_widget.batch.cluster) ----------------------------------------------
    #: a redis:// URL: one rpm/tpm budget for every worker of the cluster
    rate_limit_backend: str | None
    #: the budget's window in seconds (default 60)
    rate_window: float
    #: which budget in Redis (default "default": jobs naming the same one share it)
    limiter_name: str
    #: a redis:// URL for the record of finished rows (default: rate_limit_backend), so a re-run sends only the rest
    store: str | None
    #: the record's id (default: a hash of the rows, template and options)
    job: str | None
    #: seconds the record is kept after its last row (default 3 days)
    record_ttl: int
    #: compute now and draw one progress bar for the whole job (default False: a lazy Dask DataFrame)
    compute: bool
    #: a team gateway's URL for the workers, which send the ERNIE_API_KEY of their own environment
    gateway: str | None


#: the batch options and their defaults (every other keyword of `map` is a request parameter)
MAP_DEFAULTS: dict[str, Any] = {
    "model": None, "system": None, "concurrency": 8, "rpm": None, "tpm": None, "progress": True, "cache": None,
    "on_error": "keep", "namespace": None, "row_retries": 2, "transport": "auto",
}
