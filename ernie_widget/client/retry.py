"""How long to wait before retrying: exponential backoff with full jitter, honouring Retry-After.

Full jitter (a uniform wait up to the exponential bound) spreads the retries of many clients hit by the same
429 or 5xx, instead of sending them back together (AWS Architecture Blog, "Exponential Backoff And Jitter").
"""

from __future__ import annotations

import random

from .defaults import RETRY_AFTER_CAP, RETRY_BASE, RETRY_CAP

__all__ = ["request_backoff", "row_backoff"]


def _honour(delay: float, retry_after: float | None) -> float:
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay


def request_backoff(attempt: int, retry_after: float | None) -> float:
    """The wait before retry ``attempt + 1`` of a request (attempt counts from 0): up to 0.5 s, 1 s, 2 s … 8 s."""
    return _honour(random.uniform(0, min(RETRY_CAP, RETRY_BASE * 2**attempt)), retry_after)


def row_backoff(attempt: int, retry_after: float | None) -> float:
    """The wait before retry ``attempt`` (counting from 1) of a batch row: between RETRY_BASE / 2 and
    RETRY_BASE · 2^(attempt−1), so a wave of failed rows does not come back at once."""
    return _honour(random.uniform(RETRY_BASE / 2, RETRY_BASE * 2 ** (attempt - 1)), retry_after)
