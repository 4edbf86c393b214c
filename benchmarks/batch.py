"""Batch throughput: `client.map` against the simulator in its own process, fixed latency per request.

    python benchmarks/batch.py              # 2,000 rows, 50 ms latency, concurrency 1 / 8 / 32
    python benchmarks/batch.py --rows 500
    python benchmarks/batch.py --smoke      # a few rows, a quick check that it runs

With a fixed latency L the ideal rate at concurrency C is C / L rows/s. The per-row overhead is what the
client adds to each row beyond L: elapsed × C / rows − L. Goal: ≥ 90 % of ideal at concurrency 32.
Concurrency 1 runs at most 200 rows (its rate is latency-bound, 2,000 rows would take 100 s of waiting).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def start_simulator(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ernie_widget.testing", "--latency", str(latency)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("ERNIE_SIMULATOR_URL="):
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, line.split("=", 1)[1]


def run(url: str, rows: int, concurrency: int, latency: float) -> dict[str, float]:
    from ernie_widget.client import Ernie

    with Ernie("qianfan", api_key="bce-v3/ALTAK-bench/secret", base_url=url + "/v2") as client:
        client.chat("warm up")  # connection pool, imports, the private loop
        prompts = [f"row {i}: 你好" for i in range(rows)]
        start = time.perf_counter()
        result = client.map(prompts, concurrency=concurrency, progress=False)
        elapsed = time.perf_counter() - start
    failed = len(result.errors)
    if failed:
        raise SystemExit(f"{failed} rows failed: {next(iter(result.errors.values()))}")
    rate = rows / elapsed
    ideal = concurrency / latency
    return {"rows": rows, "elapsed": elapsed, "rate": rate, "ideal": ideal, "ratio": rate / ideal,
            "overhead_ms": (elapsed * concurrency / rows - latency) * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (default 0.05)")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 8, 32])
    parser.add_argument("--smoke", action="store_true", help="a few rows per level")
    args = parser.parse_args(argv)
    rows = 40 if args.smoke else args.rows
    os.environ["ERNIE_QUIET"] = "1"
    proc, url = start_simulator(args.latency)
    try:
        print(f"simulator {url}, latency {args.latency * 1000:g} ms, python {sys.version.split()[0]}")
        print(f"{'conc':>5} {'rows':>6} {'elapsed s':>10} {'rows/s':>9} {'ideal':>8} {'of ideal':>9} "
              f"{'overhead ms/row':>16}")
        worst = 1.0
        for c in args.concurrency:
            n = min(rows, 200) if c == 1 else rows
            r = run(url, n, c, args.latency)
            print(f"{c:>5} {n:>6} {r['elapsed']:>10.2f} {r['rate']:>9.1f} {r['ideal']:>8.0f} "
                  f"{r['ratio']:>8.1%} {r['overhead_ms']:>16.2f}")
            if c == max(args.concurrency):
                worst = r["ratio"]
    finally:
        proc.terminate()
        proc.wait(5)
    goal = 0.9
    print(f"goal: ≥ {goal:.0%} of ideal at concurrency {max(args.concurrency)} — "
          f"{'met' if worst >= goal else 'MISSED'} ({worst:.1%})")
    return 0 if args.smoke or worst >= goal else 1


if __name__ == "__main__":
    raise SystemExit(main())
