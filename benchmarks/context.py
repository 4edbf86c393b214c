"""@-mention context: a 10,000,000-row DataFrame with object (string) columns, and the @ list of 10,000 names.

    python benchmarks/context.py               # 10 M rows, 10,000 names, best of 5
    python benchmarks/context.py --rows 2000000 --names 50000
    python benchmarks/context.py --smoke       # 100,000 rows, 1,000 names, one run: checks that it runs

Each contender runs in the same process on the same objects, best of N (the naive ones once: they take seconds):

  frame  `describe("sales", ns)` (exact shape and dtypes, statistics on 1,000 sampled rows)
         `interpolate.format_value(df)`: what ``%%ernie {df}`` sends (schema and ``head(5)``, no statistics)
         naive: ``repr(df)`` + ``df.describe()`` + ``df.isna().sum()`` (full scans of every column)
  list   `list_variables(ns)` (300 entries, kinds and sizes of known types only)
         naive: ``[(name, type(v).__name__, repr(v)[:50]) for name, v in ns.items()]``

Goals: `describe` ≤ 50 ms on 10 M rows; `list_variables` ≤ 30 ms on 10,000 names. A smoke run's small inputs
say nothing about them: there the goals are printed as "not judged".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

GOAL_FRAME_MS, GOAL_LIST_MS = 50.0, 30.0


def make_frame(rows: int) -> pd.DataFrame:
    """7 columns: numbers, a date, a flag, and two object columns of Python strings (one with None)."""
    i = np.arange(rows)
    rng = np.random.default_rng(1)
    names = np.tile(np.array(["alice", "bob", "carol", "dave", "erin"], dtype=object), rows // 5 + 1)[:rows]
    cities = np.tile(np.array(["北京", "上海", None, "深圳"], dtype=object), rows // 4 + 1)[:rows]
    return pd.DataFrame(
        {
            "order_id": i,
            "amount": rng.random(rows) * 100,
            "qty": rng.integers(1, 20, rows),
            "customer": pd.Series(names, dtype=object, copy=False),
            "city": pd.Series(cities, dtype=object, copy=False),
            "day": pd.Series(np.datetime64("2024-01-01") + (i % 365).astype("timedelta64[D]"), copy=False),
            "returned": i % 17 == 0,
        },
        copy=False,
    )


def make_namespace(names: int, frame: pd.DataFrame) -> dict[str, Any]:
    """A notebook's namespace: mostly scalars and strings, some containers, arrays, small frames and functions."""
    ns: dict[str, Any] = {"In": [""], "Out": {}, "_": None, "__builtins__": {}, "np": np, "pd": pd, "sales": frame}
    small = pd.DataFrame({"a": range(10), "b": list("abcdefghij")})
    makers: list[Callable[[int], Any]] = [
        lambda i: i, lambda i: i / 7, lambda i: f"label {i}" * 10, lambda i: list(range(1000)),
        lambda i: {f"k{j}": j for j in range(10)}, lambda i: np.zeros((10, 100)), lambda i: small,
        lambda i: make_frame, lambda i: (i, i + 1), lambda i: f"short {i}",
    ]
    for i in range(names):
        ns[f"var_{i:06d}"] = makers[i % len(makers)](i)
    return ns


def best_ms(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        best = min(best, (time.perf_counter() - started) * 1000)
    return best, result


def naive_frame(df: pd.DataFrame) -> str:
    return f"{df!r}\n{df.describe()}\n{df.isna().sum()}"


def naive_list(ns: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(name, type(v).__name__, repr(v)[:50]) for name, v in ns.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the frame (default 10,000,000)")
    parser.add_argument("--names", type=int, default=10_000, help="names in the namespace (default 10,000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per contender; the best counts (default 5)")
    parser.add_argument("--smoke", action="store_true", help="100,000 rows, 1,000 names, one run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    rows, names, runs = (100_000, 1_000, 1) if args.smoke else (args.rows, args.names, args.runs)

    from ernie_widget.client.messages import estimate_tokens
    from ernie_widget.context import describe, list_variables
    from ernie_widget.interpolate import format_value

    started = time.perf_counter()
    frame = make_frame(rows)
    ns = make_namespace(names, frame)
    built = time.perf_counter() - started
    describe("sales", ns), list_variables(ns), format_value(frame.head(10))  # warm: first-call imports

    frame_contenders: list[tuple[str, Callable[[], str], int]] = [
        ('describe("sales")', lambda: describe("sales", ns).item["text"], runs),
        ("format_value(df) (%%ernie {df})", lambda: format_value(frame), runs),
        ("naive: repr + describe() + isna().sum()", lambda: naive_frame(frame), 1),
    ]
    list_contenders: list[tuple[str, Callable[[], list[Any]], int]] = [
        ("list_variables(ns)", lambda: list_variables(ns), runs),
        ("naive: (name, type, repr[:50]) for all", lambda: naive_list(ns), 1),
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"python {sys.version.split()[0]}, pandas {pd.__version__}, load average {load:.1f} on {os.cpu_count()} CPUs; "
          f"inputs built in {built:.1f} s")

    print(f"\ncontext of a {rows:,}-row DataFrame, {frame.shape[1]} columns (2 of Python strings); best of {runs}")
    print(f"{'contender':<42}{'ms':>10}{'× describe':>12}{'tokens':>9}")
    frame_ms: dict[str, float] = {}
    for name, fn, n in frame_contenders:
        ms, text = best_ms(fn, n)
        frame_ms[name] = ms
        ratio = ms / frame_ms['describe("sales")']
        print(f"{name:<42}{ms:>10.1f}{ratio:>11.1f}×{estimate_tokens(text):>9,}")

    print(f"\nthe @ list of a namespace of {len(ns):,} names; best of {runs}")
    print(f"{'contender':<42}{'ms':>10}{'× list':>12}{'entries':>9}")
    list_ms: dict[str, float] = {}
    for name, fn, n in list_contenders:
        ms, result = best_ms(fn, n)
        list_ms[name] = ms
        print(f"{name:<42}{ms:>10.1f}{ms / list_ms['list_variables(ns)']:>11.1f}×{len(result):>9,}")

    ours_frame, ours_list = frame_ms['describe("sales")'], list_ms["list_variables(ns)"]
    missed = []
    if ours_frame > GOAL_FRAME_MS:
        missed.append(f"describe took {ours_frame:.1f} ms (goal ≤ {GOAL_FRAME_MS:g} ms)")
    if ours_list > GOAL_LIST_MS:
        missed.append(f"list_variables took {ours_list:.1f} ms (goal ≤ {GOAL_LIST_MS:g} ms)")
    goals = f"describe ≤ {GOAL_FRAME_MS:g} ms on {rows:,} rows, list_variables ≤ {GOAL_LIST_MS:g} ms on {len(ns):,} names"
    if args.smoke:
        print(f"\ngoals: {goals} — not judged on a smoke run's {rows:,} rows and {len(ns):,} names")
        return 0
    print(f"\ngoals: {goals} — " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
