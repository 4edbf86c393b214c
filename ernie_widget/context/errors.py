"""The one error a mention raises: it cannot be sent (unknown name, nothing to show, or a secret inside)."""

from __future__ import annotations

__all__ = ["MentionError"]


class MentionError(ValueError):
    """A mention that is refused, with a bilingual message that says what to do instead.

    A ValueError, so a caller that already reports bad input (the widget's `mention` handler) reports this too.
    """
