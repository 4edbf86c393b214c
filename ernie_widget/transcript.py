"""`Transcript`: a static, sanitized copy of a chat, for saved notebooks (GitHub, nbviewer)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Transcript", "context_markdown", "conversation_markdown", "tool_step_markdown"]


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
            text = "**You:** " + str(m.get("content", ""))
            if m.get("context"):
                text += "\n\n" + context_markdown(m["context"])
            parts.append(text)
        elif m["role"] == "tool":
            parts.append(tool_step_markdown(m))
        elif m.get("tool_calls") and not str(m.get("content", "")).strip():
            continue  # a round that only called tools: its steps follow
        else:
            body = "*(withdrawn)*" if m.get("withdrawn") else str(m.get("content", ""))
            if m.get("error"):
                body += f"\n\n> ⚠ {m['error']}"
            elif m.get("status") == "stopped":
                body += "\n\n> *(stopped)*"
            if m.get("search_results") and not m.get("withdrawn"):
                body += "\n\n" + sources_markdown(m["search_results"])
            parts.append(f"**{m.get('model') or 'Assistant'}:**\n\n" + body)
    return "\n\n---\n\n".join(parts)


# Brackets and parentheses as entities: a backslash before them would open math (\( and \[, markdown_math.py).
_MD_ENTITY = {"[": "&#91;", "]": "&#93;", "(": "&#40;", ")": "&#41;"}


def _md_text(text: str) -> str:
    """A source title as markdown that shows exactly this text: a title is data, never markup or a link."""
    return re.sub(r"[!-/:-@\[-`{-~]", lambda m: _MD_ENTITY.get(m.group(), "\\" + m.group()), text)


def sources_markdown(sources: list[dict[str, Any]]) -> str:
    """An answer's web sources as a markdown list: number, title as text, and the URL as an autolink when it is
    an absolute http(s) URL with a host (the renderers' rule for links)."""
    from .render import is_web_url

    lines = ["**来源 / Sources**", ""]
    for s in sources:
        url = str(s.get("url") or "")
        link = f" · <{url}>" if is_web_url(url) and not re.search(r"[\s<>]", url) else ""
        lines.append(f"- **{int(s.get('index') or 0)}.** {_md_text(str(s.get('title') or ''))}{link}")
    return "\n".join(lines)


_STEP_STATUS = {"done": "完成 / done", "failed": "失败 / failed", "skipped": "已跳过 / skipped",
                "waiting": "等待批准 / waiting", "running": "运行中 / running"}


def _fenced(text: str, lang: str) -> str:
    fence = "~" * max(3, 1 + max((len(r) for r in re.findall(r"~+", text)), default=0))
    return f"{fence}{lang}\n{text}\n{fence}"


def tool_step_markdown(m: dict[str, Any]) -> str:
    """One tool step: the tool, its status, what ran and what it returned, each as a code block (the result is
    untrusted output, never markup)."""
    status = _STEP_STATUS.get(str(m.get("step_status", "")), str(m.get("step_status", "")))
    head = f"> **工具 / Tool:** {_md_text(str(m.get('name', '')))} · {status}"
    if m.get("edited"):
        head += " · 用户修改过 / edited by the user"
    blocks = [head]
    code = m.get("code_or_arguments")
    if code:
        blocks.append(_fenced(str(code), "python" if m.get("name") == "run_python" else "json"))
    blocks.append(_fenced(str(m.get("content", "")), "text"))
    if m.get("images"):
        blocks.append(f"*({len(m['images'])} 张图 / figure(s))*")
    return "\n\n".join(blocks)


def context_markdown(items: list[dict[str, Any]]) -> str:
    """A question's @-mentions: their labels, then exactly the text that was sent, each as a code block (the text is
    data from the user's variables, never markup; the static renderer does not pass raw HTML, so no <details>)."""
    labels = ", ".join(f"@{_md_text(str(i.get('name', '')))} ({_md_text(str(i.get('label', '')))})" for i in items)
    blocks = [f"> **上下文 / Context:** {labels}"]
    for item in items:
        text = str(item.get("text", ""))
        fence = "~" * max(3, 1 + max((len(r) for r in re.findall(r"~+", text)), default=0))
        blocks.append(f"{fence}text\n{text}\n{fence}")
    return "\n\n".join(blocks)
