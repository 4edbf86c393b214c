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
from collections.abc import Callable

from markdown_it import MarkdownIt, rules_inline
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

__all__ = ["LINK_TEXT_LIMIT", "SCAN_BUDGET", "guard_links", "linear_joins"]

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

def _fragments_join(state: StateInline) -> None:
    """markdown-it's ``fragments_join`` in linear time: it merged adjacent text tokens by appending each to a growing
    ``token.content`` (a copy of the whole run per token), so ``"* a"`` or ``"a** "`` × 25,000 (every delimiter a
    text token of its own) took seconds. Same levels and tokens, each run of text joined once."""
    tokens, level = state.tokens, 0
    out: list[Token] = []
    run: list[str] = []
    for token in tokens:
        if token.nesting < 0:
            level -= 1
        token.level = level
        if token.nesting > 0:
            level += 1
        if token.type == "text" and out and out[-1].type == "text":
            run.append(token.content)
            continue
        if len(run) > 1:
            out[-1].content = "".join(run)
        out.append(token)
        run = [token.content] if token.type == "text" else []
    if len(run) > 1:
        out[-1].content = "".join(run)
    tokens[:] = out


def _text_join(state: StateCore) -> None:
    """markdown-it's core ``text_join`` (escapes become text, adjacent text joined) without its quadratic appends."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        out: list[Token] = []
        run: list[str] = []
        for token in block.children:
            if token.type == "text_special":
                token.type = "text"
            if token.type == "text" and out and out[-1].type == "text":
                run.append(token.content)
                continue
            if len(run) > 1:
                out[-1].content = "".join(run)
            out.append(token)
            run = [token.content] if token.type == "text" else []
        if len(run) > 1:
            out[-1].content = "".join(run)
        block.children = out


def linear_joins(md: MarkdownIt) -> None:
    """Replace markdown-it's text-joining rules with linear ones (``md.use(linear_joins)``)."""
    md.inline.ruler2.at("fragments_join", _fragments_join)
    md.core.ruler.at("text_join", _text_join)
