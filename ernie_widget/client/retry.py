"""How long to wait before retrying: one policy for streams (client/lifecycle.py) and batch rows (batch/runner.py).

Baidu's SDK (qianfan 0.4.12.3) waits ``min(backoff_factor·2^(n−1) + U(0, jitter), max_wait_interval)`` before retry
n, with backoff_factor = 1 s, jitter = 1 s, max_wait_interval = 120 s and 3 attempts in all: 1–2 s, then 2–3 s
(qianfan/resources/requestor/base.py `_with_retry`: tenacity ``wait_exponential_jitter(initial=backoff_factor,
jitter=jitter, max=max_wait_interval)``, stop_after_attempt(retry_count); the numbers are qianfan/consts.py
`DefaultValue.RetryBackoffFactor`, `RetryJitter`, `RetryMaxWaitInterval`, `RetryCount`; tenacity 8.x wait.py computes
``initial·2^(attempt_number−1) + U(0, jitter)``). Baidu's page hlzic283e gives the same formula (docs/ernie-wire.md §2.6).

So after the server itself asked for less — a rate limit (HTTP 429, ``*_rate_limit_exceeded``, v1 4, 18, 336501,
336502) or an overload or failure on its side (v1 336100 "high load", v1 2, v2 ``internal_error``, any 5xx) — the
wait starts at RETRY_OVERLOAD_BASE = 1 s as Baidu's does, doubles per retry and is drawn uniformly between that floor
and twice it (1–2 s, 2–4 s, 4–8 s, capped at RETRY_CAP): retrying sooner only adds load where there is too much,
and the spread keeps a wave of clients or batch rows from coming back together (AWS Architecture Blog, "Exponential
Backoff And Jitter"). A broken or refused connection says nothing about load (often a pooled connection the server
closed): it is retried quickly, between RETRY_BASE / 2 and RETRY_BASE·2^(n−1) s. Either wait is lengthened to a
``Retry-After``, if one came, of up to RETRY_AFTER_CAP.
"""

from __future__ import annotations

import random

from .defaults import RETRY_AFTER_CAP, RETRY_BASE, RETRY_CAP, RETRY_OVERLOAD_BASE
from .errors import ErnieError, RateLimitError, ServerError

__all__ = ["backoff", "server_asked_for_less"]

# past this many doublings every bound is at its cap; also keeps 2**n finite
_MAX_DOUBLINGS = 16


def server_asked_for_less(err: ErnieError) -> bool:
    """Whether ``err`` is the server saying it has too much to do: a rate limit, an overload or a server failure."""
    return isinstance(err, RateLimitError | ServerError)


def backoff(retry: int, err: ErnieError) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first) of a request that failed with ``err``."""
    growth = 2.0 ** min(max(retry, 1) - 1, _MAX_DOUBLINGS)
    if server_asked_for_less(err):
        floor = min(RETRY_CAP / 2, RETRY_OVERLOAD_BASE * growth)
        delay = random.uniform(floor, 2 * floor)
    else:
        delay = random.uniform(RETRY_BASE / 2, min(RETRY_CAP, RETRY_BASE * growth))
    if err.retry_after is not None:
        delay = max(delay, min(err.retry_after, RETRY_AFTER_CAP))
    return delay
