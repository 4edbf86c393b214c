"""pandas and polars frames and series: exact shape and dtypes, everything else from a bounded sample.

Nothing here scans a whole column: no ``isna().sum()``, ``describe()`` or ``to_string()`` on the frame (each a
full pass, ≈0.3–1.4 s on 10 M rows). Columns past `MAX_COLUMNS` are named, not sampled; string cells are cut
before they are formatted; every string shown (column names, cells, top values, index labels) passes the key check.
"""

from __future__ import annotations

from typing import Any

from .keyguard import check_value
from .kinds import Known, known
from .rendered import Rendered, plural
from .sampling import VALUE_CHARS, numeric_summary, positions, sample_note, spread, top_values
from .textcut import clip

__all__ = ["render_frame"]

#: columns described one per line (and sampled); the rest are only named
MAX_COLUMNS = 40
#: rows and columns of the small table of sampled rows
SHOWN_ROWS = 5
ROW_COLUMNS = 12
NAME_CHARS = 60


def render_frame(value: Any, max_chars: int) -> Rendered | None:
    family = known(value)
    if family == Known.PANDAS_FRAME:
        return _pandas_frame(value, max_chars)
    if family == Known.PANDAS_SERIES:
        return _pandas_series(value, max_chars)
    if family == Known.POLARS_FRAME:
        return _polars_frame(value, max_chars)
    if family == Known.POLARS_SERIES:
        return _polars_series(value, max_chars)
    return None


def _name(name: Any) -> str:
    if type(name) is str:
        check_value(name, shown=NAME_CHARS)
        return clip(name, NAME_CHARS)
    return clip(repr(name), NAME_CHARS)


# -- pandas ---------------------------------------------------------------------------------------------------------


def _pandas_frame(df: Any, max_chars: int) -> Rendered:
    n_rows, n_cols = df.shape
    picks = positions(n_rows)
    width = min(n_cols, MAX_COLUMNS)
    sample = df.iloc[:, :width] if picks is None else df.iloc[picks, :width]
    lines = [_pandas_index(df.index), sample_note(n_rows)]
    lines.append(f"columns ({width} of {n_cols} shown):" if width < n_cols else "columns:")
    for j in range(width):
        lines.append(_pandas_column(_name(df.columns[j]), sample.iloc[:, j]))
    if width < n_cols:
        rest = ", ".join(_name(c) for c in df.columns[width : width + 200])
        lines.append(clip(f"…[{n_cols - width:,} more columns: {rest}]", max_chars // 4))
    lines.append(f"{min(SHOWN_ROWS, len(sample))} of the sampled rows:" if picks is not None else "first rows:")
    lines.append(_pandas_table(sample.iloc[spread(len(sample), SHOWN_ROWS), :ROW_COLUMNS]))
    return Rendered(
        f"pandas DataFrame, {plural(n_rows, 'row')} × {plural(n_cols, 'column')}",
        f"DataFrame {n_rows:,} × {n_cols:,}",
        "\n".join(lines),
    )


def _pandas_series(s: Any, max_chars: int) -> Rendered:
    n = len(s)
    picks = positions(n)
    sample = s if picks is None else s.iloc[picks]
    name = _name(s.name) if s.name is not None else ""
    lines = [_pandas_index(s.index), sample_note(n), _pandas_column("values", sample)]
    lines.append(f"{min(SHOWN_ROWS, len(sample))} of the sampled values:" if picks is not None else "first values:")
    lines.append(_pandas_table(sample.iloc[spread(len(sample), SHOWN_ROWS)].to_frame(name=name or "value")))
    titled = f" {name!r}" if name else ""
    return Rendered(f"pandas Series{titled}, {plural(n, 'row')}, {s.dtype}", f"Series {n:,}", "\n".join(lines))


def _pandas_index(index: Any) -> str:
    import pandas as pd

    if type(index) is pd.RangeIndex:
        return f"index: RangeIndex(start={index.start}, stop={index.stop}, step={index.step})"
    names = [n for n in index.names if n is not None]
    named = f", names {[_name(n) for n in names]}" if names else ""
    return f"index: {type(index).__name__}, dtype {index.dtype}{named}"


def _pandas_column(title: str, col: Any) -> str:
    """``- name: dtype · nulls k · summary`` of a sampled column."""
    import numpy as np
    import pandas as pd
    from pandas.api import types as t

    dtype = col.dtype
    nulls = int(col.isna().sum())  # the sample's: at most SAMPLE_ROWS values
    summary = ""
    try:
        if isinstance(dtype, pd.CategoricalDtype):
            summary = f"{len(dtype.categories):,} categories · " + top_values(col.astype(object).tolist())
        elif t.is_bool_dtype(dtype):
            values = col.dropna().astype(bool).to_numpy()
            summary = f"true {values.mean():.0%}" if values.size else "all null"
        elif t.is_numeric_dtype(dtype) and not t.is_complex_dtype(dtype):
            summary = numeric_summary(col.to_numpy(dtype="float64", na_value=np.nan))
        elif t.is_datetime64_any_dtype(dtype) or t.is_timedelta64_dtype(dtype):
            present = col.dropna()
            summary = f"min {present.min()} · max {present.max()}" if len(present) else "all null"
        else:
            summary = top_values(col.tolist())
    except (TypeError, ValueError, OverflowError) as exc:  # an odd extension dtype: its schema still goes
        summary = f"(no summary: {type(exc).__name__})"
    return " · ".join(part for part in (f"- {title}: {dtype}", f"nulls {nulls:,}", summary) if part)


def _pandas_table(rows: Any) -> str:
    """The few sampled rows as text, strings cut (and key-checked) before pandas formats them."""
    from pandas.api import types as t

    rows = rows.copy()
    for j in range(rows.shape[1]):
        col = rows.iloc[:, j]
        if col.dtype == object or t.is_string_dtype(col.dtype):
            rows.isetitem(j, col.astype(object).map(_cell))
    for label in rows.index:
        if type(label) is str:
            check_value(label, shown=VALUE_CHARS)
    return str(rows.to_string(max_colwidth=VALUE_CHARS + 2))


def _cell(value: Any) -> Any:
    if type(value) is str:
        check_value(value, shown=VALUE_CHARS)
        return value[:VALUE_CHARS] + "…" if len(value) > VALUE_CHARS else value
    return value


# -- polars (never imported here: a polars value means polars is loaded) ------------------------------------------


def _polars_frame(df: Any, max_chars: int) -> Rendered:
    n_rows, n_cols = df.shape
    names = list(df.columns)
    width = min(n_cols, MAX_COLUMNS)
    sample = _polars_take(df.select(names[:width]), positions(n_rows))
    lines = [sample_note(n_rows), f"columns ({width} of {n_cols} shown):" if width < n_cols else "columns:"]
    for name in names[:width]:
        lines.append(_polars_column(_name(name), sample.get_column(name)))
    if width < n_cols:
        rest = ", ".join(_name(c) for c in names[width : width + 200])
        lines.append(clip(f"…[{n_cols - width:,} more columns: {rest}]", max_chars // 4))
    shown = _polars_take(sample.select(names[:ROW_COLUMNS]), spread(sample.height, SHOWN_ROWS))
    lines.append("some of the sampled rows:" if n_rows > len(shown) else "rows:")
    lines.append(_polars_table(shown))
    return Rendered(
        f"polars DataFrame, {plural(n_rows, 'row')} × {plural(n_cols, 'column')}",
        f"DataFrame {n_rows:,} × {n_cols:,}",
        "\n".join(lines),
    )


def _polars_series(s: Any, max_chars: int) -> Rendered:
    n = s.len()
    sample = _polars_take(s, positions(n))
    name = _name(s.name) if s.name else ""
    shown = _polars_take(sample, spread(sample.len(), SHOWN_ROWS))
    lines = [sample_note(n), _polars_column("values", sample), "some of the sampled values:", _polars_table(shown.to_frame())]
    titled = f" {name!r}" if name else ""
    return Rendered(f"polars Series{titled}, {plural(n, 'row')}, {s.dtype}", f"Series {n:,}", "\n".join(lines))


def _polars_take(obj: Any, picks: Any) -> Any:
    if picks is None:
        return obj
    gather = getattr(obj, "gather", None) or obj.take  # `take` before polars 0.19.14
    return gather(list(picks) if isinstance(picks, list) else picks.tolist())


def _polars_column(title: str, col: Any) -> str:
    import numpy as np

    dtype = col.dtype
    nulls = int(col.null_count())
    summary = ""
    try:
        if dtype.is_numeric():
            summary = numeric_summary(np.asarray(col.cast(float).to_numpy(), dtype="float64"))
        elif str(dtype) == "Boolean":
            present = col.drop_nulls()
            summary = f"true {present.mean():.0%}" if present.len() else "all null"
        elif dtype.is_temporal():
            summary = f"min {col.min()} · max {col.max()}"
        else:
            summary = top_values(col.to_list())
    except Exception as exc:  # polars raises its own types; the schema still goes
        summary = f"(no summary: {type(exc).__name__})"
    return " · ".join(part for part in (f"- {title}: {dtype}", f"nulls {nulls:,}", summary) if part)


def _polars_table(rows: Any) -> str:
    for col in rows.get_columns():
        if str(col.dtype) in ("String", "Utf8"):
            for v in col.to_list():
                if type(v) is str:
                    check_value(v, shown=VALUE_CHARS)
    return str(rows)
