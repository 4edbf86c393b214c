"""Cutting text to a size: by characters (before formatting, so work stays bounded) and by tokens (the bound)."""

from __future__ import annotations

from ernie_widget.client.messages import estimate_tokens

__all__ = ["clip", "cut_to_tokens"]


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters, with how much was left out."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}…[{len(text) - max_chars:,} more chars not sent]"


def cut_to_tokens(text: str, max_tokens: int, marker: str) -> str:
    """The longest start of ``text`` that, with ``marker`` after it, is at most ``max_tokens`` (estimated).

    The first line (the mention's header) is always kept. The cut goes back to a line end when one is near, so a
    table row or a source line is not split.
    """
    if estimate_tokens(text) <= max_tokens:
        return text
    header, _, _ = text.partition("\n")
    # past ~16 characters a token the text cannot fit (only whitespace counts for nothing): the search stays short
    low, high = len(header), min(len(text), len(header) + 16 * max_tokens)
    # binary search on the prefix length: the estimate grows with the prefix (it counts words and symbols)
    while low < high:
        mid = (low + high + 1) // 2
        if estimate_tokens(text[:mid] + marker) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    end = max(low, len(header))
    newline = text.rfind("\n", len(header), end + 1)
    if newline > len(header) and end - newline < 200:
        end = newline
    return text[:end].rstrip() + "\n" + marker
