"""Guards that keep markdown-it-py linear on hostile text (issue 19).

markdown-it's link rule tries every ``[`` (and ``![``) and scans forward for the label's ``]``; while scanning it
tries the rule again at every ``[`` inside, up to the nesting limit (100). Text made of brackets — ``[`` × 50,000,
``![[`` × 12,500, ``^[1`` × 20,000 — cost 50–100 steps per bracket, seconds per render, and brackets followed
by many ``](`` made the scans quadratic. With reference definitions off (render.py) a link or image can only be
inline, ``[text](url)``: its ``[`` has a matching ``]`` followed by ``(``. The guard matches the paragraph's
brackets once (a stack, backslash escapes honoured) and lets markdown-it try a link only where

- the bracket's match is followed by ``(``, within :data:`LINK_TEXT_LIMIT` characters, and
- the paragraph's scanning budget (:data:`SCAN_BUDGET` × its length: the text the tried labels span) is not used up.

A real answer never comes near the budget (its links' texts are part of its length). The one difference from plain
markdown-it: a link whose text holds a code span or math with an *unbalanced* bracket (``[a `]` b](u)``) is text.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Sequence
from typing import Any

from markdown_it import MarkdownIt, rules_block, rules_inline
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

__all__ = [
    "INLINE_BUDGET", "LINE_BUDGET", "LINK_TEXT_LIMIT", "SCAN_BUDGET", "guard_links", "inline_budget", "line_budget",
    "linear_joins",
]  # fmt: skip

#: a link's text longer than this stays text (CommonMark bounds reference labels at 999 characters)
LINK_TEXT_LIMIT = 1_000
#: the text all tried link labels of a paragraph may span, in multiples of its length
SCAN_BUDGET = 8

InlineRule = Callable[[StateInline, bool], bool]


class _Brackets:
    """The brackets of one paragraph: which ``]`` matches each ``[``, and what is left of the scanning budget."""

    __slots__ = ("budget", "match", "src")

    def __init__(self, src: str) -> None:
        self.src = src
        self.match: dict[int, int] = {}
        self.budget = SCAN_BUDGET * len(src) + 4096
        stack: list[int] = []
        for m in _BRACKET.finditer(src):
            if m.group() == "[":
                stack.append(m.start())
            elif m.group() == "]" and stack:
                self.match[stack.pop()] = m.start()


_BRACKET = re.compile(r"\\.|[\[\]]", re.DOTALL)


def _brackets(state: StateInline) -> _Brackets:
    found: _Brackets | None = getattr(state, "_ernie_brackets", None)
    if found is None or found.src is not state.src:
        found = _Brackets(state.src)
        state._ernie_brackets = found  # type: ignore[attr-defined]
    return found


def _guarded(rule: InlineRule, opener: str) -> InlineRule:
    def guarded(state: StateInline, silent: bool) -> bool:
        pos = state.pos
        if not state.src.startswith(opener, pos):
            return False
        brackets = _brackets(state)
        label = pos + len(opener) - 1
        close = brackets.match.get(label, -1)
        if close < 0 or close - label > LINK_TEXT_LIMIT or not state.src.startswith("(", close + 1):
            return False
        if brackets.budget < close - label:
            return False
        brackets.budget -= close - label
        return rule(state, silent)

    guarded.__name__ = f"guarded_{getattr(rule, '__name__', 'rule')}"
    return guarded


def guard_links(md: MarkdownIt) -> None:
    """Replace markdown-it's ``link`` and ``image`` rules with guarded ones (``md.use(guard_links)``)."""
    md.inline.ruler.at("link", _guarded(rules_inline.link, "["))
    md.inline.ruler.at("image", _guarded(rules_inline.image, "!["))


# ---------------------------------------------------------------------------------------------------
# Joining text tokens

def _joined_text(tokens: list[Token]) -> list[Token]:
    """``tokens`` with each run of adjacent text tokens merged into its first, the run's text joined once (markdown-it
    appended each token to a growing ``token.content``: a copy of the whole run per token)."""
    out: list[Token] = []
    run: list[str] = []
    for token in tokens:
        if token.type == "text" and out and out[-1].type == "text":
            run.append(token.content)
            continue
        if len(run) > 1:
            out[-1].content = "".join(run)
        out.append(token)
        run = [token.content] if token.type == "text" else []
    if len(run) > 1:
        out[-1].content = "".join(run)
    return out


def _fragments_join(state: StateInline) -> None:
    """markdown-it's ``fragments_join`` in linear time: ``"* a"`` or ``"a** "`` × 25,000 (every delimiter a text token
    of its own) took seconds. Same levels and tokens, each run of text joined once."""
    level = 0
    for token in state.tokens:
        if token.nesting < 0:
            level -= 1
        token.level = level
        if token.nesting > 0:
            level += 1
    state.tokens[:] = _joined_text(state.tokens)


def _text_join(state: StateCore) -> None:
    """markdown-it's core ``text_join`` (escapes become text, adjacent text joined) without its quadratic appends."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        for token in block.children:
            if token.type == "text_special":
                token.type = "text"
        block.children = _joined_text(block.children)


def linear_joins(md: MarkdownIt) -> None:
    """Replace markdown-it's text-joining rules with linear ones (``md.use(linear_joins)``)."""
    md.inline.ruler2.at("fragments_join", _fragments_join)
    md.core.ruler.at("text_join", _text_join)


# ---------------------------------------------------------------------------------------------------
# Inline budget

#: the inline markup one render may parse, in :func:`inline_cost` units (~5 µs each). A 100 KB real answer
#: (benchmarks/browser_render.py's, ~100 ms to render) costs ~16,500; hostile text (``*_`` or ``[`` × 100,000,
#: ``[a](`` × 25,000) cost 100,000–500,000 and took 0.4–1.7 s. Past the budget a paragraph is its text, escaped.
INLINE_BUDGET = 25_000
# the characters where markdown-it's text rule stops and every inline rule is tried (~4 µs each)
_MARKUP_CHARS = "\n!#$%&*+-:<=>@[\\]^_`{}~"


def inline_cost(text: str) -> int:
    """What parsing `text` inline costs: its markup characters, emphasis delimiters three times (each is a token
    that is scanned, paired and rendered), ``$`` and ``<`` twice, and 16 more per ``](`` (a link destination's scan,
    up to 32 nested parentheses)."""
    count = text.count
    return (sum(map(count, _MARKUP_CHARS)) + 2 * (count("*") + count("_") + count("~")) + count("$") + count("<")
            + 16 * count("]("))


def _inline(state: StateCore) -> None:
    """markdown-it's core ``inline`` rule within :data:`INLINE_BUDGET` per render: a block that would overdraw it is
    one text token (escaped by the renderer: nothing is lost, nothing formatted); later, cheaper blocks still parse.
    ``env["ernie_inline_spent"]`` carries what earlier blocks spent (`render_stream` renders a tail on its own)."""
    env = state.env if isinstance(state.env, dict) else {}
    spent = int(env.get("ernie_inline_spent", 0))
    for token in state.tokens:
        if token.type != "inline":
            continue
        if token.children is None:
            token.children = []
        cost = inline_cost(token.content)
        token.meta["ernie_cost"] = cost
        if spent + cost > INLINE_BUDGET:
            token.meta["ernie_cost"] = 0
            token.children.append(Token("text", "", 0, content=token.content))
            continue
        spent += cost
        state.md.inline.parse(token.content, state.md, state.env, token.children)
    env["ernie_inline_spent"] = spent


def inline_budget(md: MarkdownIt) -> None:
    """Bound the inline parsing of one render (``md.use(inline_budget)``), see :data:`INLINE_BUDGET`."""
    md.core.ruler.at("inline", _inline)


# ---------------------------------------------------------------------------------------------------
# Line budget

#: the lines one render may look at with the block rules (each line a block starts or a paragraph goes on at costs
#: ~10–20 µs: every block rule is tried; a table row counts four). A 100 KB real answer looks at ~4,500; ``# h`` or
#: ``a  `` × 25,000 lines took 0.2–1 s. Past the budget the rest of the container (the answer, at the top) is one
#: paragraph of its text, escaped.
LINE_BUDGET = 7_000


def _line_budget(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """First block rule, and a paragraph's, list's and quote's terminator: counts the lines looked at in
    ``env["ernie_lines_spent"]``; once over :data:`LINE_BUDGET` it ends the open paragraph and takes the remaining lines
    as one ``ernie_plain`` token. ``env["ernie_line_marks"]`` records the count where each top-level block starts
    (`render_stream` carries it over to a tail it renders on its own)."""
    env = state.env if isinstance(state.env, dict) else {}
    spent = int(env.get("ernie_lines_spent", 0)) + 1
    env["ernie_lines_spent"] = spent
    if not silent and state.level == 0:
        env.setdefault("ernie_line_marks", {})[start_line] = spent - 1
    if spent <= LINE_BUDGET:
        return False
    if silent:
        return True
    token = state.push("ernie_plain", "p", 0)
    token.content = state.getLines(start_line, end_line, state.blkIndent, False)
    token.map = [start_line, end_line]
    token.block = True
    state.line = end_line
    return True


def _render_plain(self: object, tokens: list[Token], idx: int, options: object, env: object) -> str:
    return "<p>" + escapeHtml(tokens[idx].content).replace("\n", "<br>\n") + "</p>\n"


def _render(self: Any, tokens: Sequence[Token], options: Any, env: Any) -> str:
    """markdown-it's ``Renderer.render`` joining the parts once (it appended each to a growing string)."""
    rules, parts = self.rules, []
    for i, token in enumerate(tokens):
        if token.type == "inline":
            if token.children:
                parts.append(self.renderInline(token.children, options, env))
        elif token.type in rules:
            parts.append(rules[token.type](tokens, i, options, env))
        else:
            parts.append(self.renderToken(tokens, i, options, env))
    return "".join(parts)


BlockRule = Callable[[StateBlock, int, int, bool], bool]


def _budgeted(rule: BlockRule, cost: int) -> BlockRule:
    """A rule that reads lines itself (a table's rows, a setext heading's underline: no other rule sees them), or
    whose blocks cost more than a line: what it reads counts against the line budget, `cost` per line, and a table
    ends where the budget does (its rows after that are text)."""

    def budgeted(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
        env = state.env if isinstance(state.env, dict) else {}
        spent = int(env.get("ernie_lines_spent", 0))
        rows = max(2, (LINE_BUDGET - spent) // cost)
        if not rule(state, start_line, min(end_line, start_line + rows), silent):
            return False
        if not silent:
            env["ernie_lines_spent"] = spent + cost * (state.line - start_line)
        return True

    budgeted.__name__ = f"budgeted_{getattr(rule, '__name__', 'rule')}"
    return budgeted


def line_budget(md: MarkdownIt) -> None:
    """Bound the block parsing of one render (``md.use(line_budget)``), see :data:`LINE_BUDGET`."""
    md.block.ruler.before(
        md.block.ruler.get_all_rules()[0], "ernie_line_budget", _line_budget,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )
    # a table row costs about four lines (its cells are parsed and rendered one by one), a heading two
    md.block.ruler.at("table", _budgeted(rules_block.table, 4), {"alt": ["paragraph", "reference"]})
    md.block.ruler.at("heading", _budgeted(rules_block.heading, 1), {"alt": ["paragraph", "reference", "blockquote"]})
    md.block.ruler.at("lheading", _budgeted(rules_block.lheading, 1))
    md.add_render_rule("ernie_plain", _render_plain)
    md.renderer.render = types.MethodType(_render, md.renderer)  # type: ignore[method-assign]
