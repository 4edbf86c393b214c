"""The optional content filter on prompts (input) and answers (output).

``--filter PATH``: a blocklist file, one term per line (case-insensitive), ``re:PATTERN`` for a
regular expression, ``#`` for comments. ``--filter module:function``: a Python callable
``function(text, direction) -> bool | str | None`` (direction is "input" or "output"; truthy blocks,
a string says why). For output the callable sees the whole answer so far after each chunk.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from typing import Any

__all__ = ["ContentFilter"]

# How far back an output check looks before the new chunk, so a term split across chunks is found.
_REGEX_LOOKBACK = 512


class ContentFilter:
    """``check(text, direction)`` returns why the text is blocked, or None."""

    def __init__(self, pattern: re.Pattern[str] | None = None,
                 func: Callable[[str, str], Any] | None = None, lookback: int = _REGEX_LOOKBACK,
                 description: str = "") -> None:
        self.pattern = pattern
        self.func = func
        self.lookback = lookback
        self.description = description

    @classmethod
    def load(cls, spec: str) -> ContentFilter:
        """A blocklist file path, or ``module:function``."""
        if os.path.isfile(spec):
            with open(spec, encoding="utf-8") as f:
                return cls.from_lines(f.read().splitlines(), description=os.path.basename(spec))
        module, sep, name = spec.partition(":")
        if not sep or not module or not name:
            raise ValueError(f"--filter expects a blocklist file or module:function, got {spec!r}")
        func = getattr(importlib.import_module(module), name)
        if not callable(func):
            raise ValueError(f"{spec} is not callable")
        return cls(func=func, description=spec)

    @classmethod
    def from_lines(cls, lines: list[str], description: str = "blocklist") -> ContentFilter:
        parts: list[str] = []
        longest = 0
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("re:"):
                re.compile(line[3:])  # fail at start-up on a broken pattern, naming it
                parts.append(f"(?:{line[3:]})")
                longest = max(longest, _REGEX_LOOKBACK)
            else:
                parts.append(re.escape(line))
                longest = max(longest, len(line))
        pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None
        return cls(pattern=pattern, lookback=longest, description=description)

    def check(self, text: str, direction: str, new_chars: int | None = None) -> str | None:
        """Why ``text`` must be blocked, or None. ``new_chars``: only the end of ``text`` is new (output)."""
        if self.pattern is not None:
            start = 0 if new_chars is None else max(0, len(text) - new_chars - self.lookback)
            m = self.pattern.search(text, start)
            if m is not None:
                return f"blocked term ({self.description})"
        if self.func is not None:
            verdict = self.func(text, direction)
            if verdict:
                return verdict if isinstance(verdict, str) else f"blocked by {self.description}"
        return None
