"""`%%ernie` streaming display: render finished blocks once, re-render only the open tail (issue 19).

Re-rendering the whole answer on every display update made a long answer quadratic: each update cost the whole
text so far. :class:`StreamRenderer` splits the text into top-level blocks with the renderer's own parser (as the
widget's incremental renderer does, js/markdown.ts), keeps the sanitized HTML of each finished block, and renders
only what follows. A block is finished once another block follows it and the first line of that one is complete
(until its newline arrives a line can still change what ends the block before it). A paragraph holding a ``$$`` or
``\\[`` line is never finished early: the closer may still come and make it a display-math block.

The final display is always a whole render (`render.bundle`); this only changes the updates while streaming.
"""

from __future__ import annotations

import json
import re
from typing import Any

from markdown_it.token import Token

__all__ = ["StreamRenderer"]

_MATH_OPENER = re.compile(r"^[ \t]*(?:\$\$|\\\[)", re.MULTILINE)


def _normalize(text: str) -> str:
    """Line endings and NULs as markdown-it normalizes them, so line offsets match its line map."""
    return re.sub(r"\r\n?", "\n", text).replace("\0", "\ufffd")


def _blocks(tokens: list[Token]) -> list[tuple[int, int]]:
    """Top-level blocks as token ranges [start, end): a block ends where the nesting level returns to 0."""
    blocks, i = [], 0
    while i < len(tokens):
        start, level = i, 0
        while True:
            level += tokens[i].nesting
            i += 1
            if level <= 0 or i >= len(tokens):
                break
        blocks.append((start, i))
    return blocks


class StreamRenderer:
    """Sanitized HTML of a growing markdown answer; `render(text)` costs about the open tail, not the whole text."""

    def __init__(self) -> None:
        self._frozen: list[str] = []
        self._frozen_src = ""
        self._key = ""
        self._spent = 0  # the inline budget the frozen blocks used (markdown_guards.INLINE_BUDGET)
        self._lines = 0  # and the line budget (markdown_guards.LINE_BUDGET)

    def render(self, text: str, sources: list[dict[str, Any]] | None = None) -> str:
        from .render import _markdown, limit_nesting, sanitize

        src = _normalize(text or "")
        key = json.dumps(
            sources or [], sort_keys=True, default=str
        )  # citations in frozen blocks link to sources
        if key != self._key or not src.startswith(self._frozen_src):
            self._frozen, self._frozen_src, self._key, self._spent, self._lines = [], "", key, 0, 0
        tail = src[len(self._frozen_src) :]
        md = _markdown()
        env = {"ernie_highlight": False, "ernie_sources": {s["index"]: s for s in sources or ()},
               "ernie_inline_spent": self._spent, "ernie_lines_spent": self._lines}
        tokens = md.parse(limit_nesting(tail), env)
        blocks = _blocks(tokens)
        starts = [0] + [m.end() for m in re.finditer("\n", tail)]

        def first_line(k: int) -> int:
            token_map = tokens[blocks[k][0]].map
            return token_map[0] if token_map else 0

        frozen = 0
        while frozen + 1 < len(blocks) and first_line(frozen + 1) + 1 < len(starts):
            begin, end = first_line(frozen), first_line(frozen + 1)
            if tokens[blocks[frozen][0]].type != "math_block" and _MATH_OPENER.search(
                tail, starts[begin], starts[end]
            ):
                break
            frozen += 1
        html = [sanitize(md.renderer.render(tokens[a:b], md.options, env)) for a, b in blocks]
        if frozen:
            self._frozen.extend(html[:frozen])
            self._spent += sum(int(t.meta.get("ernie_cost", 0)) for t in tokens[: blocks[frozen - 1][1]])
            marks = env.get("ernie_line_marks")  # the line budget spent where the first open block starts
            if isinstance(marks, dict):
                self._lines = marks.get(first_line(frozen), self._lines)
            self._frozen_src += tail[: starts[first_line(frozen)]]
        return "".join(self._frozen) + "".join(html[frozen:])
