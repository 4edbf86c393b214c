"""Which namespace names are the user's variables: the rule the @ list and ``%%ernie`` mentions share."""

from __future__ import annotations

import types
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["IPYTHON_NAMES", "Hidden", "is_user_variable"]

#: IPython's own names in ``user_ns`` (and ``Err``, the traceback store of ``%%ernie``): never the user's data
IPYTHON_NAMES = frozenset({"In", "Out", "Err", "get_ipython", "exit", "quit"})

#: ``shell.user_ns_hidden`` (a dict: a name is hidden only while it still holds IPython's value, as ``%who``
#: decides) or a plain set of names
Hidden = Mapping[str, Any] | Collection[str]


def is_user_variable(name: Any, value: Any, hidden: Hidden | None = None) -> bool:
    """Not private (``_x``), not IPython's, not hidden, not a module; only ``type(value)`` is looked at."""
    if type(name) is not str or not name or name[0] == "_" or name in IPYTHON_NAMES:
        return False
    if hidden and name in hidden and (not isinstance(hidden, Mapping) or hidden[name] is value):
        return False
    return not issubclass(type(value), types.ModuleType)
