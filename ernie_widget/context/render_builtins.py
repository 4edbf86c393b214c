"""Builtin values: strings, bytes, numbers, and containers rendered to a bounded depth, item count and length.

Containers are walked through their base type's own methods (``dict.items(d)``, ``list.__iter__(l)``), so a
subclass's overridden ``__iter__``/``__len__`` never runs, and walking stops as soon as the text is full: a
10-million-item list costs what its first items cost. A string leaf is cut before it is formatted.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

from .keyguard import MARGIN, check_value
from .kinds import kind_of, known, module_of, size_of
from .rendered import Rendered, plural
from .textcut import clip

__all__ = ["render_builtin"]

MAX_DEPTH = 4
TOP_ITEMS = 50
NESTED_ITEMS = 10
LEAF_CHARS = 200
#: a container whose whole text fits this is printed on one line
SHORT_LINE = 100
#: ints past this many bits are described, not printed (str() of a huge int is a C loop, and Python refuses
#: beyond 4,300 digits anyway)
MAX_INT_BITS = 4000

_Walk = tuple[str, str, Callable[[Any], int], Callable[[Any], Iterator[Any]]]
# (open, close, len, iterate) per base type; dict iterates (key, value) pairs
_CONTAINERS: list[tuple[type, _Walk]] = [
    (dict, ("{", "}", dict.__len__, lambda d: iter(dict.items(d)))),
    (list, ("[", "]", list.__len__, list.__iter__)),
    (tuple, ("(", ")", tuple.__len__, tuple.__iter__)),
    (set, ("{", "}", set.__len__, set.__iter__)),
    (frozenset, ("frozenset({", "})", frozenset.__len__, frozenset.__iter__)),
]


def _walk_of(cls: type) -> _Walk | None:
    for base, walk in _CONTAINERS:
        if issubclass(cls, base):
            return walk
    return None


def render_builtin(value: Any, max_chars: int) -> Rendered | None:
    """A string, bytes, number or container; None for anything else."""
    cls = type(value)
    if issubclass(cls, str):
        return _string(str.__getitem__(value, slice(None)) if cls is not str else value, max_chars)
    if issubclass(cls, bytes | bytearray):
        base = bytes if issubclass(cls, bytes) else bytearray
        n = base.__len__(value)
        data = bytes(base.__getitem__(value, slice(0, max_chars // 16)))  # cut before repr (≤ 4 chars a byte)
        text = repr(data) + (f"…[{n - len(data):,} more bytes not sent]" if len(data) < n else "")
        check_value(text)
        return Rendered(f"{kind_of(value)}, {plural(n, 'byte')}", f"bytes {n:,}", text)
    scalar = _scalar(value)
    if scalar is not None:
        return Rendered(f"{kind_of(value)} = {clip(scalar, 200)}", kind_of(value))
    walk = _walk_of(cls)
    if walk is None:
        return None
    n = walk[2](value)
    text = _top(value, walk, max_chars)
    return Rendered(f"{kind_of(value)}, {plural(n, 'item')}", f"{kind_of(value)} {plural(n, 'item')}", text)


def _string(text: str, max_chars: int) -> Rendered:
    check_value(text, shown=max_chars)
    lines = f", {plural(text.count(chr(10), 0, 1_000_000) + 1, 'line')}" if len(text) <= 1_000_000 else ""
    return Rendered(f"str, {plural(len(text), 'char')}{lines}", f"str {plural(len(text), 'char')}", clip(text, max_chars))


def _scalar(value: Any) -> str | None:
    """The text of a number, bool or None (exact builtin types, or numpy scalars), else None."""
    cls = type(value)
    if value is None or cls is bool or cls is float or cls is complex:
        return repr(value)
    if cls is int:
        bits = value.bit_length()
        if bits > MAX_INT_BITS:
            return f"<an int of about {math.floor(bits * math.log10(2)) + 1:,} digits>"
        return repr(value)
    if module_of(cls) == "numpy" and known(value) is None and not issubclass(cls, type):
        return repr(value)  # numpy scalar types (np.float64(1.5)): numpy's own C repr
    return None


def _top(value: Any, walk: _Walk, max_chars: int) -> str:
    """The container on one line when it is short, else one item per line (nested containers inline), as far as
    ``max_chars`` allows."""
    opener, closer, length, iterate = walk
    n = length(value)
    if n <= NESTED_ITEMS:
        short = _inline(value, walk, 0, set(), min(SHORT_LINE + 20, max_chars))
        if len(short) <= SHORT_LINE:
            return short
    lines = [opener]
    used = len(opener)
    shown = 0
    is_dict = opener == "{" and issubclass(type(value), dict)
    for item in itertools.islice(iterate(value), TOP_ITEMS):
        budget = max(max_chars - used, 0)
        if budget < 20:
            break
        text = _pair(item, 1, {id(value)}, budget) if is_dict else _leaf(item, 1, {id(value)}, budget)
        lines.append(f"  {text},")
        used += len(text) + 4
        shown += 1
    if shown < n:
        lines.append(f"  …[{n - shown:,} more items not sent]")
    lines.append(closer)
    return "\n".join(lines)


def _pair(item: tuple[Any, Any], depth: int, seen: set[int], budget: int) -> str:
    key = _leaf(item[0], depth, seen, min(budget, LEAF_CHARS))
    return f"{key}: {_leaf(item[1], depth, seen, max(budget - len(key) - 2, 10))}"


def _leaf(value: Any, depth: int, seen: set[int], budget: int) -> str:
    """One value inline, at most about ``budget`` characters."""
    cls = type(value)
    if issubclass(cls, str):
        text = str.__getitem__(value, slice(0, LEAF_CHARS + MARGIN))
        check_value(text)
        return clip(repr(text[:LEAF_CHARS]), budget) + (f"…[{len(value) - LEAF_CHARS:,} more chars]" if len(value) > LEAF_CHARS else "")
    scalar = _scalar(value)
    if scalar is not None:
        return clip(scalar, budget)
    walk = _walk_of(cls)
    if walk is not None:
        return _inline(value, walk, depth, seen, budget)
    if known(value) is not None:
        return f"<{kind_of(value)} {size_of(value)}>"
    text = repr(value)  # an unknown object: its own repr, under the caller's time limit
    check_value(text, shown=LEAF_CHARS)
    return clip(text, min(budget, LEAF_CHARS))


def _inline(value: Any, walk: _Walk, depth: int, seen: set[int], budget: int) -> str:
    opener, closer, length, iterate = walk
    n = length(value)
    if id(value) in seen:
        return opener + "…" + closer  # a cycle, as Python prints one
    if depth >= MAX_DEPTH:
        return f"{opener}…{plural(n, 'item')}{closer}"
    is_dict = issubclass(type(value), dict)
    inner = seen | {id(value)}
    parts: list[str] = []
    used = len(opener) + len(closer)
    for item in itertools.islice(iterate(value), NESTED_ITEMS):
        if used >= budget:
            break
        text = _pair(item, depth + 1, inner, budget - used) if is_dict else _leaf(item, depth + 1, inner, budget - used)
        parts.append(text)
        used += len(text) + 2
    if len(parts) < n:
        parts.append(f"…{n - len(parts):,} more")
    return opener + ", ".join(parts) + closer

