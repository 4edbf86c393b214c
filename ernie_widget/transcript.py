"""`Transcript`: a static, sanitized copy of a chat, for saved notebooks (GitHub, nbviewer)."""

from __future__ import annotations

from typing import Any

__all__ = ["Transcript"]


class Transcript:
    """A static, sanitized copy of a chat for saved notebooks."""

    def __init__(self, markdown: str) -> None:
        self.markdown = markdown

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .render import render_markdown

        return {"text/html": f'<div class="ernie-transcript">{render_markdown(self.markdown)}</div>',
                "text/plain": self.markdown}

    def __repr__(self) -> str:
        return self.markdown
