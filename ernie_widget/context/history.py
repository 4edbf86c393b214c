"""The special mentions, read from IPython's own records: ``error``, ``cell``, ``In[n]`` and ``Out[n]``.

``In`` is IPython's list of cell sources (``In[0]`` is empty), ``Out`` its dict of results by execution count;
``error`` is the exception IPython showed last (``sys.last_value``, set by ``showtraceback``). ``error`` and
``cell`` are reserved mention names: a variable called ``error`` cannot shadow the "Fix last error" mention.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "RESERVED",
    "cell_source",
    "last_exception",
    "latest_cell",
    "output",
    "parse_special",
    "recent_inputs",
    "recent_outputs",
]

RESERVED = frozenset({"error", "cell"})
_HISTORY = re.compile(r"(In|Out)\[(\d{1,9})\]")
#: returned by `output` when there is no such result (None is a result a cell can have … though Out omits it)
MISSING: Any = object()


def parse_special(name: str) -> tuple[str, int | None] | None:
    """``("error", None)``, ``("cell", None)``, ``("In", 3)``, ``("Out", 3)``, or None for a plain name."""
    if name in RESERVED:
        return name, None
    match = _HISTORY.fullmatch(name)
    if match:
        return match.group(1), int(match.group(2))
    return None


def last_exception() -> BaseException | None:
    """The exception IPython showed last (``sys.last_exc`` from Python 3.12, ``sys.last_value`` before)."""
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return exc if isinstance(exc, BaseException) else None


def _inputs(ns: Mapping[str, Any]) -> list[Any]:
    inputs = ns.get("In")
    return inputs if type(inputs) is list else []


def cell_source(ns: Mapping[str, Any], n: int) -> str | None:
    """The source of cell ``n`` (``In[n]``), or None when there is none."""
    inputs = _inputs(ns)
    if 0 < n < len(inputs) and isinstance(inputs[n], str):
        return inputs[n]
    return None


def latest_cell(ns: Mapping[str, Any], shell: Any = None) -> tuple[int, str] | None:
    """The latest cell that ran and is not empty: ``(n, source)``.

    IPython appends a cell to ``In`` before running it, so during a run (``%%ernie``) ``In[-1]`` is the running
    cell itself; with a shell, cells at or after ``shell.execution_count`` (the running one) are skipped.
    """
    inputs = _inputs(ns)
    end = len(inputs)
    count = getattr(shell, "execution_count", None) if shell is not None else None
    if isinstance(count, int) and 0 < count < end:
        end = count
    for n in range(end - 1, 0, -1):
        source = inputs[n]
        if isinstance(source, str) and source.strip():
            return n, source
    return None


def output(ns: Mapping[str, Any], n: int) -> Any:
    """``Out[n]``, or `MISSING`."""
    outputs = ns.get("Out")
    if type(outputs) is dict and n in outputs:
        return outputs[n]
    return MISSING


def recent_inputs(ns: Mapping[str, Any], count: int) -> list[int]:
    """The numbers of the latest ``count`` non-empty cells, newest first."""
    inputs = _inputs(ns)
    found: list[int] = []
    for n in range(len(inputs) - 1, 0, -1):
        if len(found) >= count:
            break
        if isinstance(inputs[n], str) and inputs[n].strip():
            found.append(n)
    return found


def recent_outputs(ns: Mapping[str, Any], count: int) -> list[int]:
    """The execution counts of the latest ``count`` results in ``Out``, newest first."""
    outputs = ns.get("Out")
    if type(outputs) is not dict:
        return []
    return sorted((k for k in outputs if type(k) is int), reverse=True)[:count]
