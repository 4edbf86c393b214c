"""What a value is, and its size where that is cheap and safe to know, without running the value's own code.

Only ``type(value)`` is looked at first: it never runs user code, unlike ``isinstance`` (which may read
``__class__``), attribute access (properties, ``__getattr__``) or ``len()`` (``__len__``). A size is computed
for known types only: builtins of their exact type, and the classes of pandas, polars and numpy themselves
(looked up in ``sys.modules``: nothing is imported; a value of those types means its library is loaded).
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["Known", "kind_of", "known", "module_of", "size_of"]

#: builtins whose len() is a C field read: their exact types only (a subclass may define __len__)
_SIZED_ITEMS = (list, tuple, dict, set, frozenset)
_FUNCTIONS = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.BuiltinMethodType)


def module_of(cls: type) -> str:
    """The module a class says it comes from ("" when unreadable)."""
    try:
        module = type.__dict__["__module__"].__get__(cls)  # the type's own slot, not a metaclass property
    except Exception:
        return ""
    return module if isinstance(module, str) else ""


def _from(cls: type, library: str, name: str) -> type | None:
    """The class ``name`` of ``library`` if the library is loaded and ``cls`` is it or one of its own subclasses."""
    if module_of(cls).partition(".")[0] != library:
        return None
    root = sys.modules.get(library)
    target = getattr(root, name, None) if root is not None else None
    return target if isinstance(target, type) and issubclass(cls, target) else None


class Known:
    """Which known family a value's type belongs to (each at most one)."""

    PANDAS_FRAME = "pandas.DataFrame"
    PANDAS_SERIES = "pandas.Series"
    POLARS_FRAME = "polars.DataFrame"
    POLARS_SERIES = "polars.Series"
    NDARRAY = "numpy.ndarray"


def known(value: Any) -> str | None:
    """The `Known` family of ``value``'s type, or None."""
    cls = type(value)
    for family in (Known.PANDAS_FRAME, Known.PANDAS_SERIES, Known.POLARS_FRAME, Known.POLARS_SERIES, Known.NDARRAY):
        library, _, name = family.partition(".")
        if _from(cls, library, name) is not None:
            return family
    return None


def kind_of(value: Any) -> str:
    """The type's name ("DataFrame", "ndarray", "function"); "class" for a class."""
    cls = type(value)
    if issubclass(cls, type):
        return "class"
    try:
        name = type.__dict__["__name__"].__get__(cls)
    except Exception:
        name = "object"
    return name if isinstance(name, str) else "object"


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def size_of(value: Any) -> str:
    """"12,000 × 7", "12,000", "3 × 4", "5 items", "120 chars" for known types; "" for everything else."""
    cls = type(value)
    if cls in _SIZED_ITEMS:
        return _count(len(value), "item", "items")
    if cls is str:
        return _count(len(value), "char", "chars")
    if cls is bytes or cls is bytearray:
        return _count(len(value), "byte", "bytes")
    family = known(value)
    if family is None:
        return ""
    try:
        shape = tuple(int(d) for d in value.shape)  # a property of the library's own class: cheap
    except Exception:
        return ""
    if family in (Known.PANDAS_SERIES, Known.POLARS_SERIES):
        return f"{shape[0]:,}" if shape else ""
    if not shape:
        return "scalar"
    return " × ".join(f"{d:,}" for d in shape)
