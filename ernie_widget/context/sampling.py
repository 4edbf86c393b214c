"""The bounded sample statistics are computed on, and the one-line summaries of a sampled column.

Sampling picks ``SAMPLE_ROWS`` positions with ``numpy.random.default_rng(0).choice(n, k, replace=False)``
(Floyd's method: O(k), a fraction of a millisecond on 10 M rows) and then takes them with ``iloc``/``gather``.
``DataFrame.sample(k)`` is never used: it permutes every row first (≈0.5 s on 10 M rows). The seed is fixed, so
the same frame gives the same context twice.
"""

from __future__ import annotations

import collections
import math
import warnings
from typing import Any

from .keyguard import MARGIN, check_value
from .rendered import plural

__all__ = ["SAMPLE_ROWS", "numeric_summary", "positions", "sample_note", "spread", "top_values"]

SAMPLE_ROWS = 1_000
TOP_VALUES = 3
VALUE_CHARS = 40
#: a cell value counted for "top values" only when it is one of these (hashing anything else runs its code)
_COUNTABLE = (str, int, float, bool)


def positions(n: int, k: int = SAMPLE_ROWS) -> Any:
    """Sorted random positions (a numpy array) of ``k`` of ``n`` rows, or None when all ``n`` are few enough."""
    if n <= k:
        return None
    import numpy as np

    return np.sort(np.random.default_rng(0).choice(n, k, replace=False))


def sample_note(n: int) -> str:
    """Says which rows the statistics describe."""
    if n <= SAMPLE_ROWS:
        return f"statistics: all {plural(n, 'row')}"
    return (
        f"statistics: sampled {SAMPLE_ROWS:,} of {n:,} rows (random positions, seed 0); "
        "null counts, summaries and top values are of the sample"
    )


def spread(n: int, k: int) -> list[int]:
    """``k`` positions spread evenly over ``range(n)`` (rows to show from a sorted sample)."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if abs(x) < 1e15 and (x.is_integer() or abs(x) >= 1e5):
        return f"{x:,.0f}"  # 5,309,920 reads better than 5.30992e+06
    return f"{x:.6g}"


def numeric_summary(values: Any) -> str:
    """``min … · median … · mean … · max …`` of a float numpy array (NaNs ignored)."""
    import numpy as np

    if values.size == 0:
        return "no values"
    values = values[~np.isnan(values)]
    if values.size == 0:
        return "all null"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # inf - inf and friends: the numbers still say what they are
        parts = [("min", values.min()), ("median", np.median(values)), ("mean", values.mean()), ("max", values.max())]
    return " · ".join(f"{name} {_fmt(float(v))}" for name, v in parts)


def top_values(values: list[Any]) -> str:
    """``5 distinct · top 'a' ×3, 'b' ×2`` over the plain values in ``values``.

    Strings are cut before they are counted (hashing a 10 MB string costs what reading it does), and only the
    values shown pass the key check: the rest are not sent.
    """
    plain = []
    for v in values:
        if type(v) is str:
            plain.append(v[: VALUE_CHARS + MARGIN])
        elif type(v) in _COUNTABLE and not (type(v) is float and math.isnan(v)):
            plain.append(v)
    if not plain:
        return ""
    counts = collections.Counter(plain)
    shown = []
    for v, c in counts.most_common(TOP_VALUES):
        if type(v) is str:
            check_value(v)
            v = v[:VALUE_CHARS] + "…" if len(v) > VALUE_CHARS else v
        shown.append(f"{v!r} ×{c:,}")
    return f"{len(counts):,} distinct · top {', '.join(shown)}"
