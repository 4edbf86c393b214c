"""`client.map` on a Dask cluster against the single-process map, at the same total concurrency.

    python benchmarks/batch_cluster.py              # 20,000 rows, 50 ms latency, 4 workers × 8 vs one map × 32
    python benchmarks/batch_cluster.py --rows 5000
    python benchmarks/batch_cluster.py --smoke      # 400 rows on 2 workers: a quick check that it runs

The simulator runs in its own process with a fixed latency L, so the ideal rate at total concurrency C is
C / L rows/s for both. The cluster run is the production path: a `distributed.LocalCluster` of worker
processes, each partition a batch on the worker's own client, every row charged to the shared Redis limiter
and recorded in Redis. On a 2-core machine the cluster cannot be faster than one process (the cores are
shared), so what is judged is its overhead: goal cluster rows/s ≥ 0.8 × single-process rows/s.

The last part checks the budget: the same cluster under ``rpm`` far below its demand (per one-second window,
against an in-process simulator whose request log is read) must send no more than ``rpm`` in any window.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "bce-v3/ALTAK-bench/secret"


def start_simulator(latency: float) -> tuple[subprocess.Popen[str], str]:
    from ernie_widget.testing import simulator_process

    return simulator_process("--latency", str(latency), cwd=ROOT)

def frame(rows: int, tag: str) -> object:
    import pandas as pd

    return pd.DataFrame({"i": range(rows), "tag": tag})


def run_single(url: str, rows: int, concurrency: int) -> float:
    """Rows per second of one process's `client.map` (the pandas path) at ``concurrency``."""
    from ernie_widget.client import Ernie

    with Ernie("qianfan", api_key=KEY, base_url=url + "/v2") as client:
        client.map("warm up {i}", frame(concurrency, "w"), concurrency=concurrency, progress=False)
        start = time.perf_counter()
        out = client.map("row {i} {tag}: 你好", frame(rows, "single"), concurrency=concurrency, progress=False)
        elapsed = time.perf_counter() - start
    _check(out, rows)
    return rows / elapsed


def run_cluster(dask_client: object, url: str, redis_url: str, rows: int, workers: int, concurrency: int,
                partitions: int) -> float:
    """Rows per second of the cluster map: ``workers`` processes × ``concurrency`` rows in flight each."""
    import dask.dataframe as dd

    from ernie_widget.client import Ernie

    with Ernie("qianfan", api_key=KEY, base_url=url + "/v2") as client:
        options = {"concurrency": concurrency, "rate_limit_backend": redis_url, "progress": False,
                   "rpm": 10_000_000, "limiter_name": "bench-" + uuid.uuid4().hex[:8]}
        warm = dd.from_pandas(frame(workers * concurrency, "w"), npartitions=workers * 2, sort=False)
        client.map("warm up {i}", warm, job="warm-" + uuid.uuid4().hex[:8], **options).compute()
        ddf = dd.from_pandas(frame(rows, "cluster"), npartitions=partitions, sort=False).persist()
        start = time.perf_counter()
        out = client.map("row {i} {tag}: 你好", ddf, job="bench-" + uuid.uuid4().hex[:8], **options).compute()
        elapsed = time.perf_counter() - start
    _check(out, rows)
    return rows / elapsed


def check_budget(dask_client: object, redis_url: str, workers: int, concurrency: int, rpm: int,
                 rows: int) -> tuple[int, float]:
    """The most requests in any one-second window while the cluster asks for far more than ``rpm`` of them."""
    import dask.dataframe as dd

    from ernie_widget.client import Ernie
    from ernie_widget.testing import ErnieSimulator

    with ErnieSimulator(latency=0.01) as sim:
        # the workers read their configuration from their environment; this simulator is another URL, so the
        # cluster map is pointed at it through gateway= (an OpenAI-compatible base URL and ERNIE_API_KEY)
        with Ernie("openai", api_key=KEY, base_url=sim.base_url("openai")) as client:
            ddf = dd.from_pandas(frame(rows, "budget"), npartitions=workers * 2, sort=False)
            start = time.perf_counter()
            client.map("budget {i}", ddf, concurrency=concurrency, rpm=rpm, rate_window=1.0,
                       rate_limit_backend=redis_url, limiter_name="budget-" + uuid.uuid4().hex[:8],
                       gateway=sim.base_url("openai"), progress=False).compute()
            elapsed = time.perf_counter() - start
        starts = sorted(r.started for r in sim.chat_requests)
    # arrivals trail their grants by a few ms: a window 50 ms short still holds at most one window's grants
    busiest = max(sum(1 for t in starts[i:] if t < s + 0.95) for i, s in enumerate(starts))
    return busiest, elapsed


def _check(out: object, rows: int) -> None:
    errors = out["ernie_error"].dropna()  # type: ignore[index]
    if len(out) != rows or len(errors):  # type: ignore[arg-type]
        raise SystemExit(f"{len(errors)} rows failed: {errors.iloc[0] if len(errors) else ''}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (default 0.05)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="rows in flight per worker (default 8)")
    parser.add_argument("--smoke", action="store_true", help="400 rows on 2 workers")
    args = parser.parse_args(argv)
    rows, workers = (400, 2) if args.smoke else (args.rows, args.workers)
    total = workers * args.concurrency
    partitions = max(workers * 2, rows // 500)
    os.environ["ERNIE_QUIET"] = "1"

    from distributed import Client, LocalCluster

    from ernie_widget.gateway.testing import redis_server

    proc, url = start_simulator(args.latency)
    try:
        env = {"ERNIE_QUIET": "1", "QIANFAN_API_KEY": KEY, "QIANFAN_BASE_URL": url + "/v2", "ERNIE_API_KEY": KEY}
        with redis_server() as redis_url, \
                LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, host="127.0.0.1",
                             dashboard_address=None, env=env) as cluster, Client(cluster) as dask_client:
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            print(f"simulator {url}, latency {args.latency * 1000:g} ms, {rows} rows, total concurrency {total}, "
                  f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {load:.1f}")
            ideal = total / args.latency
            single = run_single(url, rows, total)
            print(f"single process  map × {total:<3}           {single:>8.1f} rows/s  ({single / ideal:.1%} of ideal)",
                  flush=True)
            clustered = run_cluster(dask_client, url, redis_url, rows, workers, args.concurrency, partitions)
            print(f"cluster {workers} workers × {args.concurrency:<3} ({partitions} partitions) "
                  f"{clustered:>8.1f} rows/s  ({clustered / ideal:.1%} of ideal)", flush=True)
            rpm = 40 if args.smoke else 200
            busiest, elapsed = check_budget(dask_client, redis_url, workers, args.concurrency, rpm,
                                            rpm * 2 if args.smoke else rpm * 4)
            print(f"budget: {rpm} requests per 1 s window, demand {total} in flight: busiest window {busiest} "
                  f"({elapsed:.1f} s)")
    finally:
        proc.terminate()
        proc.wait(5)
    ratio = clustered / single
    goal = 0.8
    held = busiest <= rpm
    met = ratio >= goal and held
    verdict = "not judged on a smoke run" if args.smoke else ("met" if met else "MISSED")
    print(f"goal: cluster ≥ {goal:.0%} of single-process rows/s at equal concurrency, and the budget held — "
          f"{verdict} (ratio {ratio:.2f}, budget {'held' if held else 'EXCEEDED'})")
    return 0 if (args.smoke and held) or met else 1


if __name__ == "__main__":
    raise SystemExit(main())
