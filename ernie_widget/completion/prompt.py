"""The fill-in-the-middle prompt of one inline completion: the cell around the cursor, a few cells before it.

Chat models have no FIM tokens, so the cursor is a marker in a user message and the system prompt asks for the
text at the marker only. Every piece is cut to a budget keeping the text nearest the cursor (the end of the
prefix, the start of the suffix, the nearest preceding cells), and redacted: a key pasted into a cell must not
travel upstream on every pause in typing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..client.redact import redact

__all__ = ["CURSOR", "DEFAULT_BUDGETS", "SYSTEM_PROMPT", "Budgets", "CompletionPrompt", "build_prompt", "clip_context",
           "clip_prefix", "clip_suffix", "safe_language"]

CURSOR = "<CURSOR>"

SYSTEM_PROMPT = (
    "You are an inline completion engine inside a Jupyter notebook. The user message shows the current cell "
    f"with the cursor marked {CURSOR}. Reply with ONLY the text to insert at {CURSOR}, so that the text before "
    f"it, your reply and the text after it read as one. Never repeat the text before {CURSOR}, never write the "
    "text after it, no explanations, no Markdown code fences. Keep it short: finish the current line or the "
    "current block. If nothing fits, reply with nothing."
)


@dataclass(frozen=True, slots=True)
class Budgets:
    """Characters kept of each part (about 3k tokens together: small enough for a fast first token)."""

    prefix: int = 6000
    suffix: int = 2000
    context: int = 4000
    cells: int = 8


@dataclass(frozen=True, slots=True)
class CompletionPrompt:
    """What is sent upstream: a system prompt and one user message."""

    system: str
    user: str


DEFAULT_BUDGETS = Budgets()

_LANGUAGE = re.compile(r"[A-Za-z0-9+#._ -]{1,40}")


def safe_language(language: str) -> str:
    """The language name as it may appear in the prompt (a short plain name; anything else is "text")."""
    language = language.strip()
    return language if _LANGUAGE.fullmatch(language) else "text"


def clip_prefix(prefix: str, limit: int) -> str:
    """The last ``limit`` characters: the ones nearest the cursor."""
    return prefix[-limit:] if limit > 0 else ""


def clip_suffix(suffix: str, limit: int) -> str:
    """The first ``limit`` characters: the ones nearest the cursor."""
    return suffix[:limit] if limit > 0 else ""


def clip_context(cells: Sequence[str], limit: int, max_cells: int) -> list[str]:
    """The nearest cells (the list is nearest last) that fit in ``limit`` characters, oldest first; the
    farthest one kept loses its beginning rather than its end."""
    kept: list[str] = []
    left = limit
    for cell in reversed(cells[-max_cells:] if max_cells > 0 else []):
        if left <= 0:
            break
        if not cell.strip():
            continue
        kept.append(cell[-left:])
        left -= len(kept[-1])
    kept.reverse()
    return kept


def build_prompt(prefix: str, suffix: str, *, language: str, cell_type: str, context: Sequence[str] = (),
                 budgets: Budgets = DEFAULT_BUDGETS) -> CompletionPrompt:
    """The system prompt and user message for one completion, bounded and redacted."""
    prefix = redact(clip_prefix(prefix, budgets.prefix)).replace(CURSOR, "")
    suffix = redact(clip_suffix(suffix, budgets.suffix)).replace(CURSOR, "")
    cells = [redact(c) for c in clip_context(context, budgets.context, budgets.cells)]
    lang = safe_language(language)
    kind = "Markdown text" if cell_type == "markdown" else f"{lang} code"
    parts: list[str] = []
    if cells:
        parts.append("Earlier cells of the notebook, oldest first:")
        parts.extend(f"<cell>\n{c}\n</cell>" for c in cells)
        parts.append("")
    parts.append(f"The current cell ({kind}); complete it at {CURSOR}:")
    parts.append(f"<cell>\n{prefix}{CURSOR}{suffix}\n</cell>")
    return CompletionPrompt(SYSTEM_PROMPT, "\n".join(parts))
