"""Client-side RPM/TPM limiting: sliding one-minute windows, shared across threads and event loops."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import Protocol

__all__ = ["MemoryRateLimiter", "RateLimiter", "make_rate_limiter"]


class RateLimiter(Protocol):
    async def acquire(self, tokens: int) -> None: ...

    def reconcile(self, estimated: int, actual: int) -> None: ...


class MemoryRateLimiter:
    """Holds requests (rpm) and tokens (tpm) within any 60 s window.

    Tokens are charged before sending as an estimate (prompt + max_tokens) and reconciled with the
    reported usage afterwards, as the qianfan SDK's TokenLimiter does (docs/ernie-wire.md §2.7).
    """

    window = 60.0

    def __init__(self, rpm: int | None = None, tpm: int | None = None) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._lock = threading.Lock()
        self._requests: collections.deque[float] = collections.deque()
        self._tokens: collections.deque[list[float]] = collections.deque()  # [time, tokens]
        self._token_sum = 0.0

    def _expire(self, now: float) -> None:
        cutoff = now - self.window
        while self._requests and self._requests[0] <= cutoff:
            self._requests.popleft()
        while self._tokens and self._tokens[0][0] <= cutoff:
            self._token_sum -= self._tokens.popleft()[1]

    def try_acquire(self, tokens: int, now: float | None = None) -> float:
        """Take a slot now and return 0, or return how long to wait before trying again."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._expire(now)
            wait = 0.0
            if self.rpm and len(self._requests) >= self.rpm:
                wait = max(wait, self._requests[0] + self.window - now)
            if self.tpm and self._tokens and self._token_sum + tokens > self.tpm:
                # wait until enough old charges expire
                need = self._token_sum + tokens - self.tpm
                freed = 0.0
                for t, n in self._tokens:
                    freed += n
                    if freed >= need:
                        wait = max(wait, t + self.window - now)
                        break
            if wait > 0:
                return wait
            self._requests.append(now)
            if self.tpm:
                self._tokens.append([now, float(tokens)])
                self._token_sum += tokens
            return 0.0

    async def acquire(self, tokens: int) -> None:
        while True:
            wait = self.try_acquire(tokens)
            if wait <= 0:
                return
            await asyncio.sleep(min(wait + 0.001, 5.0))

    def reconcile(self, estimated: int, actual: int) -> None:
        if not self.tpm or actual == estimated:
            return
        with self._lock:
            # adjust the newest matching charge; add a correction entry if none is left in the window
            for entry in reversed(self._tokens):
                if entry[1] == estimated:
                    entry[1] = float(actual)
                    self._token_sum += actual - estimated
                    return
            self._tokens.append([time.monotonic(), float(actual - estimated)])
            self._token_sum += actual - estimated


def make_rate_limiter(rpm: int | None, tpm: int | None, backend: str | None) -> RateLimiter | None:
    """A limiter for the given limits: in memory, or shared through Redis (`redis://…`)."""
    if not rpm and not tpm:
        return None
    if backend and backend.startswith(("redis://", "rediss://", "unix://")):
        from .redis_limits import RedisRateLimiter

        return RedisRateLimiter(backend, rpm=rpm, tpm=tpm)
    return MemoryRateLimiter(rpm, tpm)
