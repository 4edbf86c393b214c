"""The @ suggestion list: the user's variables, then the special mentions that exist."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ernie_widget.protocol import VariableEntry

from . import history
from .kinds import kind_of, size_of
from .names import Hidden, is_user_variable

__all__ = ["list_variables"]

#: how many of the latest cells and results are offered as In[n] / Out[n]
RECENT = 3


def list_variables(
    ns: Mapping[str, Any], prefix: str = "", limit: int = 300, *, hidden: Hidden | None = None
) -> list[VariableEntry]:
    """The user's variables whose names start with ``prefix`` (any case), by name, then the specials
    (``error``, ``cell``, ``In[n]``, ``Out[n]``) that exist; at most ``limit`` entries in all.

    Sizes come from `kinds.size_of` (known types only): listing never runs a variable's own code.
    """
    if limit <= 0:
        return []
    folded = prefix.casefold()
    specials = _specials(ns, folded)[:limit]
    names = [
        name
        for name, value in list(ns.items())  # a snapshot: the namespace may change while we look
        if is_user_variable(name, value, hidden) and name not in history.RESERVED and name.casefold().startswith(folded)
    ]
    names.sort()
    entries: list[VariableEntry] = []
    for name in names[: limit - len(specials)]:  # kinds and sizes only for the names that are shown
        value = ns.get(name)
        entries.append({"name": name, "kind": kind_of(value), "size": size_of(value)})
    return entries + specials


def _specials(ns: Mapping[str, Any], folded: str) -> list[VariableEntry]:
    found: list[VariableEntry] = []
    exc = history.last_exception()
    if exc is not None:
        found.append({"name": "error", "kind": kind_of(exc), "size": ""})
    latest = history.latest_cell(ns)
    if latest is not None:
        found.append({"name": "cell", "kind": "cell", "size": _lines(latest[1])})
    for n in history.recent_inputs(ns, RECENT):
        found.append({"name": f"In[{n}]", "kind": "cell", "size": _lines(history.cell_source(ns, n) or "")})
    for n in history.recent_outputs(ns, RECENT):
        value = history.output(ns, n)
        found.append({"name": f"Out[{n}]", "kind": kind_of(value), "size": size_of(value)})
    return [entry for entry in found if entry["name"].casefold().startswith(folded)]


def _lines(source: str) -> str:
    n = source.count("\n") + (0 if source.endswith("\n") else 1)
    return f"{n:,} line" if n == 1 else f"{n:,} lines"

