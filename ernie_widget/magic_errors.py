"""How a failed request shows in a magic's cell: one line that names the error, no traceback.

IPython shows `UsageError` as one line, but a refused key or a dead endpoint is not a usage error: calling it one
sends the user looking at their options. So a magic raises the client's own error (``AuthenticationError``,
``APIConnectionError``, …: code that runs the magic can catch it by its type, and Jupyter's error output is named
after it) with a ``_render_traceback_`` that IPython and ipykernel show instead of the traceback: one line,
``AuthenticationError: …``.
"""

from __future__ import annotations

from .client.errors import ErnieError

__all__ = ["one_line"]


def one_line(error: ErnieError) -> ErnieError:
    """``error``, made to show as the single line ``<ErrorName>: <message>`` in a notebook (already redacted)."""
    text = f"{type(error).__name__}: {error}"
    error._render_traceback_ = lambda: [text]  # type: ignore[attr-defined]  # IPython's display hook
    return error
