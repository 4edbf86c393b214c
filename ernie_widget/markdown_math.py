"""Math in model answers for markdown-it-py: ``$…$``, ``$$…$$``, ``\\(…\\)`` and ``\\[…\\]`` kept verbatim.

The TeX is not rendered here: it is escaped and wrapped in ``.ernie-math`` elements with its delimiters, and
JupyterLab's MathJax (run with its SafeHandler) typesets it; other front ends show the source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

__all__ = ["LAYOUT_TEX", "math_html", "math_plugin"]

_MATH_SEARCH_LIMIT = 5_000  # bound the closing-delimiter search, so many stray "$" or "\(" stay cheap


def _find(state: StateInline, needle: str, start: int, limit: int) -> int:
    """`state.src.find(needle, start, limit)`, remembered per paragraph while the start only moves forward: markdown-it
    tries this rule at every "$" and "\\(" in order, and a fresh bounded search from each ("\\(" × 40,000) cost
    5,000 characters apiece. The next occurrence stays valid until the start passes it."""
    memo: dict[str, tuple[str, int, int]] = state.__dict__.setdefault("_ernie_math_next", {})
    hit = memo.get(needle)
    if hit is not None and hit[0] is state.src and hit[1] <= start and (hit[2] < 0 or hit[2] >= start):
        at = hit[2]
    else:
        at = state.src.find(needle, start)
        memo[needle] = (state.src, start, at)
    return at if at >= 0 and at + len(needle) <= limit else -1


def math_inline(state: StateInline, silent: bool) -> bool:
    """``$…$``, ``$$…$$``, ``\\(…\\)`` and ``\\[…\\]`` inside a paragraph, kept verbatim."""
    src, pos, end = state.src, state.pos, state.posMax
    limit = min(end, pos + _MATH_SEARCH_LIMIT)
    if src.startswith("$$", pos):
        opener = closer = "$$"
        close = _find(state, "$$", pos + 2, limit)
    elif src[pos] == "$":
        # Pandoc's rule, so prices stay text ("$5 and $10"): no space after the opening "$", no
        # space before the closing one and no digit right after it. Stricter than pandoc, the
        # closer is the next unescaped "$": if that one does not qualify, this is not math.
        opener = closer = "$"
        if pos + 1 >= end or src[pos + 1].isspace():
            return False
        close = pos + 1
        while (close := _find(state, "$", close, limit)) > 0 and src[close - 1] == "\\":
            close += 1
        if close > 0 and (src[close - 1].isspace() or src[close + 1 : close + 2].isdigit()):
            return False
    elif src.startswith(("\\(", "\\["), pos):
        opener = src[pos : pos + 2]
        closer = "\\)" if opener == "\\(" else "\\]"
        close = _find(state, closer, pos + 2, limit)
    else:
        return False
    start = pos + len(opener)
    if close < 0 or not src[start:close].strip():
        return False
    if not silent:
        token = state.push("math_inline", "span", 0)
        token.content = src[start:close]
        token.markup = opener
        token.info = closer
    state.pos = close + len(closer)
    return True


def _ends_with(closer: str) -> Callable[[StateBlock, int], bool]:
    def test(state: StateBlock, line: int) -> bool:
        return state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]].rstrip().endswith(closer)

    return test


def _dedented(state: StateBlock, line: int) -> bool:
    return state.sCount[line] < state.blkIndent and state.bMarks[line] + state.tShift[line] < state.eMarks[line]


def _next_line(state: StateBlock, kind: str, start: int, test: Callable[[StateBlock, int], bool]) -> int:
    """The first line from `start` on that passes `test` (or a line past the end), remembered per parse while the start
    only moves forward (as in `_find`): every "$$" or "\\[" line searched to the end of the text for its closer, and the
    paragraph rule asks again at each line, so "\\[" × 30,000 lines took minutes. The start and end lines of a block
    nested in a list or quote are the same as the document's: markdown-it adjusts only where a line's text starts."""
    memo: dict[str, tuple[str, int, int, int]] = state.__dict__.setdefault("_ernie_math_lines", {})
    key = f"{kind}:{state.lineMax}"
    hit = memo.get(key)
    if hit is not None and hit[0] is state.src and hit[1] <= start <= hit[2]:
        return hit[2]
    line, stop = start, state.lineMax
    while line < stop and not test(state, line):
        line += 1
    memo[key] = (state.src, start, line, stop)
    return line


def math_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """A ``$$`` or ``\\[`` block; it may contain blank lines. Unclosed blocks are left to the paragraph rule."""
    if state.sCount[start_line] - state.blkIndent >= 4:
        return False
    begin = state.bMarks[start_line] + state.tShift[start_line]
    first = state.src[begin : state.eMarks[start_line]]
    if first.startswith("$$"):
        opener, closer = "$$", "$$"
    elif first.startswith("\\["):
        opener, closer = "\\[", "\\]"
    else:
        return False
    rest = first[2:]
    if closer in rest:  # one line: $$ … $$ (and nothing after it, else it is inline math)
        body, _, after = rest.partition(closer)
        if after.strip() or not body.strip():
            return False
        lines, last = [body], start_line
    else:
        # the closing line, unless the block is dedented out of its list/blockquote before it
        last = _next_line(state, closer, start_line + 1, _ends_with(closer))
        if last >= end_line or (
            state.blkIndent and _next_line(state, f"dedent{state.blkIndent}", start_line + 1, _dedented) <= last
        ):
            return False
        if silent:
            return True
        lines = [rest]
        for line in range(start_line + 1, last):
            lines.append(state.src[state.bMarks[line] : state.eMarks[line]])
        text = state.src[state.bMarks[last] + state.tShift[last] : state.eMarks[last]]
        lines.append(text.rstrip()[: -len(closer)])
    if silent:
        return True
    token = state.push("math_block", "div", 0)
    token.content = "\n".join(lines).strip("\n")
    token.markup = opener
    token.info = closer
    token.map = [start_line, last + 1]
    token.block = True
    state.line = last + 1
    return True


#: TeX that moves or paints outside its own box. MathJax in JupyterLab has no containment we can add (no style in
#: outputs): ``\\rlap{\\rule{40em}{2em}}`` covered the following words, ``\\raisebox`` with ``\\color{white}`` erased the
#: paragraph above and drew fake text in its place. Such math is shown as its source (code), visibly.
LAYOUT_TEX = re.compile(
    r"\\(?:[rlc]lap|math[rlc]lap|raisebox|smash|rule|kern|mkern|hskip|hspace|mspace|mskip|moveleft|moveright|raise"
    r"|lower|bbox|style|class|cssId|href|unicode|require|mmlToken)(?![A-Za-z])"
)


def math_html(tex: str, *, display: bool) -> str:
    """A math element MathJax typesets (``mathjax_process``, inside an output marked ``mathjax_ignore``), isolated
    for bidi (``<bdi>``); TeX that could paint outside its box is shown as its source in ``<code>`` instead."""
    if LAYOUT_TEX.search(tex):
        code = f'<code class="ernie-math-source">{escapeHtml(tex)}</code>'
        return f'<div class="ernie-math-source"><bdi>{code}</bdi></div>' if display else f"<bdi>{code}</bdi>"
    if display:
        return f'<div class="ernie-math ernie-math-display mathjax_process"><bdi>{escapeHtml(tex)}</bdi></div>'
    return f'<bdi><span class="ernie-math mathjax_process">{escapeHtml(tex)}</span></bdi>'


def render_math_inline(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    return math_html(token.markup + token.content + token.info, display=False)


def render_math_block(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    return math_html(f"{token.markup}\n{token.content}\n{token.info}", display=True) + "\n"


def math_plugin(md: MarkdownIt) -> None:
    """Add the math rules to ``md`` (``md.use(math_plugin)``)."""
    md.inline.ruler.before("escape", "ernie_math_inline", math_inline)
    md.block.ruler.after("fence", "ernie_math_block", math_block, {"alt": ["paragraph", "blockquote", "list"]})
    md.add_render_rule("math_inline", render_math_inline)
    md.add_render_rule("math_block", render_math_block)
