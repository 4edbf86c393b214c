"""The chat the JupyterLab / Notebook 7 extension shows beside a notebook ("ERNIE: Open chat beside notebook").

The extension runs ``sidebar_chat("sidebar:<notebook path>")`` in the notebook's kernel as a *silent* execute
request (no cell, no history entry, no execution count) and renders the displayed widget in its side panel with
the notebook's widget manager. The conversation is an ordinary named thread, so ``%%ernie --thread NAME`` in a
cell continues it, and it is persisted per user so that a restarted kernel brings the transcript back:
``$ERNIE_SIDEBAR_STORE`` (``off``: memory only), else ``$XDG_DATA_HOME/ernie-widget/sidebar-chats.sqlite3``
(``~/.local/share`` without ``XDG_DATA_HOME``). Only messages are stored, never a key.

Nothing here raises into the kernel: a failure is displayed as a short bilingual text (secrets redacted).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .widget import ErnieChat

__all__ = ["sidebar_chat", "store_path"]

_chats: dict[str, ErnieChat] = {}
_lock = threading.Lock()


def store_path() -> Path | None:
    """Where sidebar conversations are persisted, or None to keep them in memory (``ERNIE_SIDEBAR_STORE=off``)."""
    env = os.environ.get("ERNIE_SIDEBAR_STORE")
    if env is not None and env.strip():
        return None if env.strip().lower() == "off" else Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ernie-widget" / "sidebar-chats.sqlite3"


def _new_chat(thread: str) -> ErnieChat:
    from .widget import ErnieChat

    path = store_path()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            return ErnieChat(thread=thread, store=path)
        except (OSError, sqlite3.Error):
            pass  # an unwritable data directory: the chat still works, for this kernel's lifetime
    return ErnieChat(thread=thread)


def _show_text(text: str) -> None:
    from IPython.display import display

    display({"text/plain": text}, raw=True)


def sidebar_chat(thread: str) -> ErnieChat | None:
    """Display the sidebar chat of *thread* (the same widget again while it is open in this kernel)."""
    if not isinstance(thread, str) or not thread.strip():
        _show_text("侧边栏对话需要一个对话名称 / the sidebar chat needs a thread name")
        return None
    from IPython.display import display

    with _lock:
        chat = _chats.get(thread)
        if chat is None or getattr(chat, "comm", None) is None:  # a closed widget has no comm
            try:
                chat = _new_chat(thread)
            except Exception as exc:  # shown in the panel, never a traceback
                from .client.redact import redact

                detail = redact(f"{type(exc).__name__}: {exc}")
                _show_text(f"无法打开侧边栏对话 / could not open the sidebar chat\n{detail}")
                return None
            _chats[thread] = chat
    display(chat)
    return chat

