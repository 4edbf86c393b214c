"""numpy arrays: shape, dtype and size exactly; the values as numpy prints them summarised; statistics on a sample.

``numpy.array2string`` with a threshold formats only the edge items of a big array (numpy cuts before it
formats), but an n-dimensional array keeps ``2 × edgeitems`` per axis, so the printout is skipped when that is
still large (many dimensions). Strings and objects among the printed items pass the key check.
"""

from __future__ import annotations

import itertools
from typing import Any

from .keyguard import check_value
from .rendered import Rendered, plural
from .sampling import SAMPLE_ROWS, numeric_summary, positions, top_values

__all__ = ["render_ndarray"]

EDGE = 3
#: past this many printed items (2 × EDGE per axis) the printout is left out
MAX_PRINTED = 600


def render_ndarray(a: Any, max_chars: int) -> Rendered:
    import numpy as np

    shape = tuple(int(d) for d in a.shape)
    dims = " × ".join(f"{d:,}" for d in shape) if shape else "scalar"
    lines = [f"shape {shape}, dtype {a.dtype}, {a.nbytes:,} bytes"]
    kept = [min(d, 2 * EDGE) for d in shape]
    printed = int(np.prod(kept)) if shape else 1
    if printed <= MAX_PRINTED:
        _check_printed(a, shape)
        text = np.array2string(a, threshold=100, edgeitems=EDGE, max_line_width=100, precision=6)
        lines.append(text if len(text) <= max_chars // 2 else text[: max_chars // 2] + "…[cut]")
    else:
        lines.append(f"(not printed: {a.ndim} dimensions would show {printed:,} edge items)")
    if a.size and a.dtype.kind in "biufcMmOUS":
        statistics = _statistics(a)
        if statistics:
            lines.append(statistics)
    return Rendered(f"numpy ndarray, shape {dims}, dtype {a.dtype}", f"ndarray {dims}", "\n".join(lines))


def _check_printed(a: Any, shape: tuple[int, ...]) -> None:
    """Key-check the string items numpy will print: per axis the first and last EDGE."""
    if a.dtype.kind not in "OUS":
        return
    axes = [range(d) if d <= 2 * EDGE else [*range(EDGE), *range(d - EDGE, d)] for d in shape]
    for index in itertools.product(*axes):
        item = a[index]
        if type(item) is str or a.dtype.kind == "U":
            check_value(str(item), shown=200)
        elif type(item) is bytes or a.dtype.kind == "S":
            check_value(repr(item), shown=200)


def _statistics(a: Any) -> str:
    """Summary of up to SAMPLE_ROWS items drawn from the whole array (``a.flat[picks]`` copies only those)."""
    import numpy as np

    picks = positions(a.size)
    sample = a.reshape(-1) if picks is None and a.flags.c_contiguous else a.flat[picks if picks is not None else slice(None)]
    note = f"all {plural(a.size, 'item')}" if picks is None else f"sampled {SAMPLE_ROWS:,} of {a.size:,} items, seed 0"
    kind = a.dtype.kind
    if kind == "b":
        summary = f"true {sample.mean():.0%}"
    elif kind in "iuf":
        values = sample.astype("float64")
        nans = int(np.isnan(values).sum())
        summary = numeric_summary(values) + (f" · nan {nans:,}" if nans else "")
    elif kind in "Mm":
        present = sample[~np.isnat(sample)]
        summary = f"min {present.min()} · max {present.max()}" if present.size else "all NaT"
    elif kind == "c":
        summary = f"|x| max {float(np.abs(sample).max()):.6g}"
    else:
        summary = top_values(sample.tolist())
    return f"statistics ({note}): {summary}" if summary else ""
