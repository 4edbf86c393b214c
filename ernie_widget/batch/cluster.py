"""`client.map` on a Dask cluster: a Dask DataFrame (or a Bag of prompts) in, a lazy Dask DataFrame out.

    ddf = dd.read_parquet("s3://bucket/reviews/")                       # millions of rows
    out = client.map("把 {review} 分类", ddf, rate_limit_backend="redis://redis:6379/0", rpm=300)
    out.to_parquet("s3://bucket/labelled/")                             # or out.compute()
    df = client.map("…", ddf, rate_limit_backend="redis://…", compute=True)   # computed, with one progress bar

Each partition is one `client.map` batch on a worker, through that worker's own client:

- The task graph is cloudpickled to the scheduler and the workers, so it carries a `ClusterSpec` (the surface,
  model, options and Redis URL) and never the key or a bound client (which would carry it). A worker builds its
  client from its own environment (``QIANFAN_API_KEY``…), or from ``gateway=`` (a team gateway's URL) and
  the per-user ``ERNIE_API_KEY`` in its environment.
- Each worker process keeps one client and one connection pool (module level, made on first use) on the
  package's private loop (`ernie_widget.client.background`); partitions hand their batch to that loop and wait.
- ``rate_limit_backend="redis://…"`` with ``rpm=`` / ``tpm=``: one budget for the whole cluster (the
  `RedisRateLimiter` every worker charges). Without it, ``rpm`` / ``tpm`` hold per worker process, and the
  cluster as a whole sends up to workers × that.
- With a Redis URL (``rate_limit_backend=`` or ``store=``), every finished row is recorded there under a job id
  (``job=``, by default a hash of the input graph, the template and the options), so a re-run after a worker,
  driver or kernel crash sends only the rows that are missing. A worker that dies mid-batch: Dask runs its
  partition again elsewhere; recorded rows are not sent again and the output has every row exactly once. Rows
  that were in flight on the dead worker (at most ``concurrency`` of them) may reach the upstream twice.
- ``compute=True`` computes the result and draws one progress bar for the whole job (rows, tokens, rows/s),
  read from the shared record of finished rows.

``concurrency`` is rows in flight per partition: the cluster sends up to workers × threads × concurrency.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..client.background import in_background_loop, run_sync
from ..client.events import Usage
from ..client.limits import MemoryRateLimiter, RateLimiter
from ..client.map_options import MAP_DEFAULTS
from ..client.redis_limits import RedisRateLimiter
from ..client.structured import schema_spec
from ..client.transport import resolve_transport
from .progress import REFRESH_SECONDS, Progress
from .results import ERROR_COLUMN, FIELD_PREFIX, TEXT_COLUMN, TOKENS_COLUMN

if TYPE_CHECKING:
    from ..client import AsyncErnie

__all__ = ["ClusterSpec", "RedisRowStore", "forget_job", "is_dask_collection", "job_progress", "map_dask",
           "run_partition"]

#: Redis keys of a job's record: ``{ernie_widget:map:<job>}:rows`` (hash row key → JSON) and ``…:stats``
RECORD_PREFIX = "ernie_widget:map"
#: a job's record expires this long after its last row (seconds, ``record_ttl=``): long enough to resume after
#: a weekend; the record holds every answer, so Redis needs room for them meanwhile (or `forget_job` them)
RECORD_TTL = 3 * 24 * 3600
#: the column a Bag of prompts becomes
PROMPT_COLUMN = "prompt"

# options only the cluster path knows; every other keyword goes to each partition's batch
_CLUSTER_OPTIONS = ("rate_limit_backend", "rate_window", "limiter_name", "store", "job", "record_ttl", "compute",
                    "gateway")


def is_dask_collection(obj: Any) -> bool:
    """A Dask DataFrame or Bag (checked without importing dask)."""
    return type(obj).__module__.startswith("dask") and hasattr(obj, "__dask_graph__")


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """Everything a partition task needs and nothing secret: it travels in the cloudpickled task graph."""

    template: str | None  # None: each row's ``prompt`` column is sent as is (a Bag of prompts)
    surface: str | None  # the caller's provider; the worker's environment supplies the key
    model: str | None
    base_url: str | None = None  # a gateway's URL; None: the worker's environment decides
    options: Mapping[str, Any] = field(default_factory=dict)  # batch options and request parameters
    namespace: Mapping[str, str] = field(default_factory=dict)  # template names not in the rows, as text
    limiter_url: str | None = None  # redis://… : one budget for the cluster
    rpm: int | None = None
    tpm: int | None = None
    limiter_name: str = "default"
    window: float = 60.0
    store_url: str | None = None  # redis://… : where finished rows are recorded
    job: str | None = None
    record_ttl: int = RECORD_TTL


# -- on the workers ---------------------------------------------------------------------------------------------

# One client, limiter and Redis connection per worker process, made on first use and kept: a partition
# reuses the pool's connections instead of opening its own (and a limiter's script is registered once).
_lock = threading.Lock()
_pid = os.getpid()
_clients: dict[tuple[Any, ...], AsyncErnie] = {}
_limiters: dict[tuple[Any, ...], RateLimiter] = {}
_redis: dict[str, Any] = {}


def _per_process() -> None:
    global _pid
    if _pid != os.getpid():  # a forked worker must not share the parent's sockets
        _clients.clear()
        _limiters.clear()
        _redis.clear()
        _pid = os.getpid()


def _pool_size(concurrency: int) -> int:
    """Rows in flight in this process: a partition's concurrency × the worker's threads."""
    try:
        from distributed import get_worker

        threads = int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        threads = 1
    return concurrency * max(1, threads)


def worker_client(spec: ClusterSpec) -> AsyncErnie:
    """This process's client for ``spec`` (its pool sized for the partitions it may run at once)."""
    concurrency = int(spec.options.get("concurrency", MAP_DEFAULTS["concurrency"]))
    transport = spec.options.get("transport", "auto")
    size = _pool_size(concurrency)
    key = (spec.surface, spec.model, spec.base_url, transport, size)
    with _lock:
        _per_process()
        client = _clients.get(key)
        if client is None:
            from ..client import AsyncErnie, ErnieError

            try:
                base = AsyncErnie(spec.surface, model=spec.model, base_url=spec.base_url)
            except ErnieError as err:
                raise RuntimeError(
                    f"worker {os.getpid()} 无法创建客户端 / could not create its client: {err}. Give the workers "
                    "their configuration in their environment (QIANFAN_API_KEY…, e.g. LocalCluster(env={…}) or "
                    "the dask-worker's environment), or pass gateway='http://gateway:8000/v1' with ERNIE_API_KEY "
                    "in the workers' environment"
                ) from err
            client = base.for_concurrency(size, transport=transport)
            if not _clients:
                atexit.register(_close_clients)
            _clients[key] = client
        return client


def _close_clients() -> None:
    """At worker exit: close the pools on the private loop (registered after the loop's own atexit hook, so
    it runs first, while the loop is still up)."""
    for client in list(_clients.values()):
        try:
            run_sync(client.aclose(), timeout=2.0)
        except Exception:
            pass
    _clients.clear()


def worker_limiter(spec: ClusterSpec) -> RateLimiter | None:
    """The shared Redis limiter, or a per-process one in memory when no Redis URL was given."""
    if not spec.rpm and not spec.tpm:
        return None
    key = (spec.limiter_url, spec.limiter_name, spec.rpm, spec.tpm, spec.window)
    with _lock:
        _per_process()
        limiter = _limiters.get(key)
        if limiter is None:
            if spec.limiter_url:
                limiter = RedisRateLimiter(spec.limiter_url, rpm=spec.rpm, tpm=spec.tpm, name=spec.limiter_name,
                                           window=spec.window, client=_redis_client(spec.limiter_url))
            else:
                memory = MemoryRateLimiter(spec.rpm, spec.tpm)
                memory.window = spec.window
                limiter = memory
            _limiters[key] = limiter
        return limiter


def _redis_client(url: str) -> Any:
    client = _redis.get(url)
    if client is None:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        _redis[url] = client
    return client


def _record_keys(job: str) -> tuple[str, str]:
    base = f"{{{RECORD_PREFIX}:{job}}}"  # one hash tag: a Redis Cluster keeps a job's keys in one slot
    return f"{base}:rows", f"{base}:stats"


class RedisRowStore:
    """A job's finished rows in Redis, shared by every worker of the cluster.

    Why Redis: the shared limiter already needs it, so every worker (on any machine) can reach it with no new
    service, and a row is recorded with one round trip as it finishes, not when its partition ends (files on
    shared storage would need a lock or a file per row). A row's key is its partition, its position and the
    hash of its request, so a changed row is never answered from a stale record.
    """

    def __init__(self, client: Any, job: str, partition: int, ttl: int = RECORD_TTL) -> None:
        self._redis = client
        self.partition = partition
        self.rows_key, self.stats_key = _record_keys(job)
        self.ttl = ttl

    def row_key(self, index: int, content_key: str) -> str:
        return f"{self.partition}:{index}:{content_key[:24]}"

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, Usage | None]]:
        found: dict[str, tuple[str, Usage | None]] = {}
        keys = list(keys)
        for start in range(0, len(keys), 1000):
            part = keys[start:start + 1000]
            for key, raw in zip(part, self._redis.hmget(self.rows_key, part), strict=True):
                if raw is not None:
                    record = json.loads(raw)
                    usage = record.get("usage")
                    found[key] = (record["text"], Usage.from_dict(usage) if usage else None)
        return found

    def put(self, key: str, text: str, usage: Usage | None, prompt: str) -> None:
        # the prompt is not kept: the record holds answers only, and the rows already carry their prompts
        record = json.dumps({"text": text, "usage": usage.to_dict() if usage else None}, ensure_ascii=False)
        # one round trip on the loop's thread (~0.1 ms near the workers): cheaper than a hop to a thread, and
        # the row is recorded before the batch counts it done
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self.rows_key, key, record)
        pipe.hincrby(self.stats_key, "tokens", usage.total_tokens if usage else 0)
        pipe.expire(self.rows_key, self.ttl)
        pipe.expire(self.stats_key, self.ttl)
        pipe.execute()

    def add_failed(self, n: int) -> None:
        if n:
            self._redis.hincrby(self.stats_key, "failed", n)

    def close(self) -> None:
        pass  # the connection is the process's, kept for the next partition


def run_partition(part: Any, spec: ClusterSpec, partition_info: Mapping[str, Any] | None = None) -> Any:
    """One partition as one batch on this worker's client: ``part`` with the new columns."""
    if in_background_loop():
        raise RuntimeError("run_partition() 不能在 ernie-widget 事件循环中调用 / called from the ernie-widget loop")
    from .runner import _Batch, _output

    number = int(partition_info["number"]) if partition_info else 0
    client = worker_client(spec)
    store = None
    if spec.store_url and spec.job:
        with _lock:
            _per_process()
            store = RedisRowStore(_redis_client(spec.store_url), spec.job, number, ttl=spec.record_ttl)
    options = {k: v for k, v in spec.options.items() if k not in ("rpm", "tpm")}
    options |= {"progress": False, "cache": store, "namespace": dict(spec.namespace)}
    if spec.template is None:
        prompts: Any = list(part[PROMPT_COLUMN])
        rows = None
    else:
        prompts, rows = spec.template, part
    batch = _Batch(client, prompts, rows, options, limiter=worker_limiter(spec), pooled=True)
    # the batch runs on the process's private loop, where the client's pool lives; this worker thread waits
    result = run_sync(batch.execute())
    if store is not None:
        store.add_failed(sum(1 for r in result if r.error is not None and not r.cached))
    return _output(batch, part, result)


# -- on the driver ------------------------------------------------------------------------------------------------


def _template_names(template: str) -> list[str]:
    from ..interpolate import _PATTERN

    return [m.group("name") for m in _PATTERN.finditer(template) if m.group("name")]


def _meta(frame_meta: Any, schema_fields: Sequence[str]) -> Any:
    import pandas as pd

    meta = frame_meta.copy()
    meta[TEXT_COLUMN] = pd.Series([], dtype=object, index=meta.index)
    meta[ERROR_COLUMN] = pd.Series([], dtype=object, index=meta.index)
    meta[TOKENS_COLUMN] = pd.array([], dtype="Int64")
    for name in schema_fields:
        meta[f"{FIELD_PREFIX}{name}"] = pd.Series([], dtype=object, index=meta.index)
    return meta


def _bag_frame(items: Sequence[Any]) -> Any:
    import pandas as pd

    return pd.DataFrame({PROMPT_COLUMN: pd.Series(list(items), dtype=object)})


def _frame_of_bag(bag: Any) -> Any:
    import dask.dataframe as dd
    import pandas as pd

    meta = pd.DataFrame({PROMPT_COLUMN: pd.Series([], dtype=object)})
    return dd.from_delayed([_delayed_frame(p) for p in bag.to_delayed()], meta=meta, verify_meta=False)


def _delayed_frame(part: Any) -> Any:
    import dask

    return dask.delayed(_bag_frame)(part)


def map_dask(client: Any, prompts_or_template: Any, rows: Any = None, **options: Any) -> Any:
    """`client.map` over a Dask DataFrame or a Dask Bag of prompts: a lazy Dask DataFrame (see the module doc).

    ``client`` is an `Ernie` or `AsyncErnie`: only its surface, model and limits are used; its key stays here.
    Besides the `MapOptions` (``cache=`` excepted): ``rate_limit_backend`` (a ``redis://`` URL: one rpm/tpm
    budget and the record of finished rows), ``rate_window`` (seconds, 60), ``limiter_name`` (which budget),
    ``store`` (another Redis URL for the record), ``job`` (the record's id), ``record_ttl`` (seconds the record
    is kept after its last row, 3 days), ``gateway`` (a gateway's URL for the
    workers, which then send their ``ERNIE_API_KEY``) and ``compute`` (compute now, with one progress bar).
    """
    try:
        import dask.dataframe as dd  # noqa: F401
        from dask.base import tokenize
    except ImportError as exc:
        raise ImportError("在 Dask 上运行需要 / running on Dask needs: pip install 'ernie-widget[cluster]'") from exc
    aclient = getattr(client, "aio", client)
    cluster = {k: options.pop(k) for k in _CLUSTER_OPTIONS if k in options}
    compute = bool(cluster.get("compute", False))
    o = {**MAP_DEFAULTS, **options}
    if o["on_error"] not in ("keep", "raise"):
        raise ValueError(f"on_error must be 'keep' or 'raise', not {o['on_error']!r}")
    if not isinstance(o["concurrency"], int) or o["concurrency"] < 1:
        raise ValueError(f"concurrency must be a positive integer, not {o['concurrency']!r}")
    if o["cache"] is not None:
        raise TypeError("cache= 只用于单机 / cache= is a local SQLite file; on a cluster pass "
                        "rate_limit_backend='redis://…' (or store='redis://…'): finished rows are recorded there")
    resolve_transport(o["transport"], "batch")
    params = {k: v for k, v in o.items() if k not in MAP_DEFAULTS}
    aclient.check_params({"model": o["model"], **params})  # a bad temperature fails here, not on every worker
    schema_fields = [] if params.get("schema") is None else schema_spec(params["schema"]).fields

    # the input: a Dask DataFrame with a template, or a Bag of prompts
    if isinstance(prompts_or_template, str):
        if not is_dask_collection(rows) or not hasattr(rows, "columns"):
            raise TypeError("模板需要 Dask DataFrame / a template on a cluster needs a Dask DataFrame: "
                            "client.map(template, ddf); a Bag goes alone: client.map(bag_of_prompts)")
        template: str | None = prompts_or_template
        frame = rows
    else:
        if rows is not None or hasattr(prompts_or_template, "columns"):
            raise TypeError("rows 只能与模板一起使用 / a Dask DataFrame needs a template: client.map(template, ddf)")
        template, frame = None, _frame_of_bag(prompts_or_template)

    namespace: dict[str, str] = {}
    if template is not None and o["namespace"]:
        from ..interpolate import format_value

        # only the names the template uses and the rows lack, already as (redacted) text: the namespace of a
        # notebook holds clients, keys and big objects that must not travel in the graph
        columns = {str(c) for c in frame.columns}
        for name in _template_names(template):
            if name not in columns and name in o["namespace"]:
                namespace[name] = format_value(o["namespace"][name])

    url = cluster.get("rate_limit_backend")
    limiter = getattr(aclient, "_rate_limiter", None)
    if url is None and isinstance(limiter, RedisRateLimiter):  # the client's own shared limiter
        url = limiter.url
    rpm, tpm = o.pop("rpm"), o.pop("tpm")
    # the client's own limits (Ernie(rpm=…, rate_limit_backend=…)) hold on the workers too
    if (isinstance(limiter, RedisRateLimiter) and url == limiter.url) or isinstance(limiter, MemoryRateLimiter):
        rpm, tpm = rpm or limiter.rpm, tpm or limiter.tpm
    if url is not None and not str(url).startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"rate_limit_backend 应为 redis:// URL / must be a redis:// URL, not {url!r}")
    if (rpm or tpm) and url is None:
        warnings.warn("rpm/tpm 在每个 worker 进程内各自生效 / rpm and tpm hold per worker process here; pass "
                      "rate_limit_backend='redis://…' for one budget across the cluster", stacklevel=3)
    store_url = cluster.get("store") or url
    batch_options = {k: v for k, v in o.items() if k not in ("namespace", "cache", "progress")}
    job = cluster.get("job")
    if job is None and store_url:
        # the same input, template and options give the same job: a re-run resumes without being told
        job = tokenize(frame, template, namespace, repr(sorted(batch_options.items())), aclient.provider)
    if job is not None and not re.fullmatch(r"[\w.:-]{1,128}", str(job)):
        raise ValueError(f"job 只能包含字母数字和 ._:- / job must be 1-128 of [A-Za-z0-9_.:-], not {job!r}")

    gateway = cluster.get("gateway")
    spec = ClusterSpec(
        template=template,
        surface="openai" if gateway else aclient.provider,
        model=o["model"] or aclient.model,
        base_url=gateway,
        options=batch_options,
        namespace=namespace,
        limiter_url=url,
        rpm=rpm,
        tpm=tpm,
        limiter_name=str(cluster.get("limiter_name") or (limiter.name if isinstance(limiter, RedisRateLimiter)
                                                          else "default")),
        window=float(cluster.get("rate_window") or 60.0),
        store_url=store_url,
        job=None if job is None else str(job),
        record_ttl=int(cluster.get("record_ttl") or RECORD_TTL),
    )
    out = frame.map_partitions(run_partition, spec, meta=_meta(frame._meta, schema_fields),
                               enforce_metadata=False, align_dataframes=False)
    if not compute:
        return out
    if in_background_loop():
        raise RuntimeError("compute=True blocks; from async code use `await dask_client.compute(ddf)`")
    return compute_with_progress(out, frame, spec, progress=bool(o["progress"]))


def forget_job(store_url: str, job: str) -> None:
    """Delete a job's record of finished rows (its answers) from Redis: the next run sends every row again."""
    import redis

    client = redis.Redis.from_url(store_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.delete(*_record_keys(job))
    finally:
        client.close()


def job_progress(store: Any, job: str) -> tuple[int, int, int]:
    """(rows recorded, tokens, failed rows) of a job from the shared record; ``store`` is a Redis URL or client."""
    if isinstance(store, str):
        import redis

        client = redis.Redis.from_url(store, socket_timeout=5, socket_connect_timeout=5)
        try:
            return job_progress(client, job)
        finally:
            client.close()
    rows_key, stats_key = _record_keys(job)
    pipe = store.pipeline(transaction=False)
    pipe.hlen(rows_key)
    pipe.hmget(stats_key, ["tokens", "failed"])
    rows, (tokens, failed) = pipe.execute()
    return int(rows), int(tokens or 0), int(failed or 0)


def compute_with_progress(out: Any, frame: Any, spec: ClusterSpec, *, progress: bool = True) -> Any:
    """Compute ``out`` (on the distributed client when there is one) and draw one bar for the whole job."""
    job = spec.job
    bar: Progress | None = None
    store: Any = None
    if progress and spec.store_url and job:
        import redis

        store = redis.Redis.from_url(spec.store_url, socket_timeout=5, socket_connect_timeout=5)
        # the total costs one pass over the input's partitions (cheap next to the rows' requests)
        total = int(frame.map_partitions(len).compute().sum())
        done0, _, _ = job_progress(store, job)
        bar = Progress(total, min(done0, total), True)  # rows already recorded: rows/s counts only new ones
    future: Any = None
    result: list[Any] = []
    error: list[BaseException] = []
    thread = None
    try:
        from distributed import get_client

        future = get_client().compute(out)
    except (ImportError, ValueError):  # no distributed client: dask's local scheduler, in a thread
        def work() -> None:
            try:
                result.append(out.compute())
            except BaseException as exc:
                error.append(exc)

        thread = threading.Thread(target=work, name="ernie-map-compute", daemon=True)
        thread.start()
    try:
        while not (future.done() if future is not None else not thread.is_alive()):  # type: ignore[union-attr]
            if bar is not None:
                _show(bar, store, job)
            time.sleep(REFRESH_SECONDS)
        if future is not None:
            value = future.result()
        else:
            if error:
                raise error[0]
            value = result[0]
        if bar is not None:
            _show(bar, store, job)
        return value
    except KeyboardInterrupt:
        if future is not None:
            future.cancel()  # the partitions stop; their finished rows stay recorded for a re-run
        raise
    finally:
        if bar is not None:
            bar.close()
        if store is not None:
            store.close()


def _show(bar: Progress, store: Any, job: str | None) -> None:
    assert job
    rows, tokens, failed = job_progress(store, job)
    bar.done, bar.tokens, bar.failed = rows + failed, tokens, failed
    bar.refresh()

