"""`Transcript`: a static, sanitized copy of a chat, for saved notebooks (GitHub, nbviewer)."""

from __future__ import annotations

from typing import Any

__all__ = ["Transcript", "conversation_markdown"]


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


def conversation_markdown(messages: list[dict[str, Any]]) -> str:
    """A conversation as markdown: questions marked, answers as written, labelled with the model that wrote them."""
    parts = []
    for m in messages:
        if m["role"] == "user":
            parts.append("**You:** " + str(m.get("content", "")))
        else:
            body = "*(withdrawn)*" if m.get("withdrawn") else str(m.get("content", ""))
            if m.get("error"):
                body += f"\n\n> ⚠ {m['error']}"
            elif m.get("status") == "stopped":
                body += "\n\n> *(stopped)*"
            parts.append(f"**{m.get('model') or 'Assistant'}:**\n\n" + body)
    return "\n\n---\n\n".join(parts)
