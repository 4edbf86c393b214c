"""Old name of `ernie_widget.conversations` ("threads" meant conversations), kept for existing imports."""

from __future__ import annotations

from .conversations import (
    CLEARED_NOTICE,
    DEFAULT_THREAD,
    WITHDRAWN_NOTICE,
    Conversation,
    ThreadBusyError,
    get_thread,
    thread_names,
)

__all__ = ["CLEARED_NOTICE", "DEFAULT_THREAD", "WITHDRAWN_NOTICE", "Conversation", "ThreadBusyError", "get_thread",
           "thread_names"]
