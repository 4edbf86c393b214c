"""Which ``@name`` in a ``%%ernie`` prompt attach a value: only a word-initial ``@`` before a user variable (or
``error``, ``cell``, ``In[n]``, ``Out[n]`` when they exist), and never inside code.

Not mentions, by rule:

* ``alice@example.com``, ``a@b`` — the ``@`` follows a letter, digit, ``_``, ``.``, ``)`` or ``]`` (an address,
  a matrix product); CJK text before it is fine (``分析@sales``);
* anything inside a fenced block (```` ``` ```` or ``~~~``, to its end when unclosed) or a `` `code` `` span;
* a decorator line: ``@name`` or ``@name(…)`` alone on a line, followed by ``def``, ``class`` or another decorator;
* a string literal opened right after ``(``, ``[`` or ``=``: ``df.query('a > @x')``, ``expr = "@x + 1"``;
* a name that is not a user variable: ``@property`` (a builtin), ``@np`` (a module), ``@_private``.

``@sales的趋势``: a name running into non-ASCII text is cut back to the longest user variable that ends at a
switch to non-ASCII (``sales``); ``@dfx`` is never read as ``@df``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import history
from .names import Hidden, is_user_variable

__all__ = ["find_mentions"]

_MENTION = re.compile(r"(?<![A-Za-z0-9_.@)\]}$\\/])@(?P<name>(?:In|Out)\[\d{1,9}\]|[^\W\d]\w*)")
_FENCE_OPEN = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
_CODE_STRING = re.compile(r"""[=(\[][ \t]*[rRbBfFuU]{0,2}(?:'[^'\n]*'|"[^"\n]*")""")
_DECORATOR = re.compile(r"^[ \t]*@[^\W\d][\w.]*(?:\(.*\))?[ \t]*$")
_DECORATED = re.compile(r"^[ \t]*(?:@|def\b|async[ \t]+def\b|class\b)")


def find_mentions(text: str, ns: Mapping[str, Any], *, hidden: Hidden | None = None) -> list[str]:
    """The mentioned names, each once, in order of first appearance (``In[3]`` as written)."""
    prose = _blank_code(text)
    found: list[str] = []
    for match in _MENTION.finditer(prose):
        name = _resolve(match.group("name"), ns, hidden)
        if name is not None and name not in found:
            found.append(name)
    return found


def _resolve(name: str, ns: Mapping[str, Any], hidden: Hidden | None) -> str | None:
    if _exists(name, ns, hidden):
        return name
    for end in range(len(name) - 1, 0, -1):  # @sales的趋势 → sales
        if not name[end].isascii() and _exists(name[:end], ns, hidden):
            return name[:end]
    return None


def _exists(name: str, ns: Mapping[str, Any], hidden: Hidden | None) -> bool:
    special = history.parse_special(name)
    if special is None:
        return name in ns and is_user_variable(name, ns[name], hidden)
    what, n = special
    if what == "error":
        return history.last_exception() is not None
    if what == "cell":
        return history.latest_cell(ns) is not None
    assert n is not None
    if what == "In":
        return history.cell_source(ns, n) is not None
    return history.output(ns, n) is not history.MISSING


def _blank(match: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))  # same length: offsets and line breaks stay


def _blank_code(text: str) -> str:
    """``text`` with every code region (fences, code spans, decorator lines, code strings) turned into spaces."""
    lines = text.split("\n")
    fence: str | None = None
    for i, line in enumerate(lines):
        opener = _FENCE_OPEN.match(line)
        if fence is None and opener:
            fence = opener.group(1)
            lines[i] = " " * len(line)
        elif fence is not None:
            closes = line.strip().startswith(fence) and set(line.strip()) == {fence[0]}
            lines[i] = " " * len(line)
            if closes:
                fence = None
    for i, line in enumerate(lines):
        if _DECORATOR.match(line):
            following = next((later for later in lines[i + 1 :] if later.strip()), "")
            if _DECORATED.match(following):
                lines[i] = " " * len(line)
    prose = "\n".join(lines)
    prose = _INLINE_CODE.sub(_blank, prose)
    return _CODE_STRING.sub(_blank, prose)
