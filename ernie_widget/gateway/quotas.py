"""Per-user RPM/TPM windows and daily token budgets: in memory, or shared by replicas through Redis.

The gateway never queues a user's request behind their own limit: a request that does not fit is
answered at once with 429 and ``Retry-After`` (the OpenAI convention), and the caller's client backs off.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

from ..client.limits import MemoryRateLimiter
from .auth import Principal

__all__ = ["Charge", "QuotaExceeded", "Quotas"]

_DAY = 86400


class QuotaExceeded(Exception):
    """The user is over a limit; ``retry_after`` says when the request would fit (whole seconds, ≥ 1)."""

    def __init__(self, message: str, code: str, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass
class Charge:
    """What `Quotas.admit` charged for one request, to be settled with the real usage."""

    principal: Principal
    estimate: int
    limiter: Any = None


def _seconds_to_utc_midnight(now: float) -> float:
    return _DAY - (now % _DAY)


class Quotas:
    """Admits or refuses requests per user. ``redis_url`` shares every window and budget between processes."""

    def __init__(self, redis_url: str | None = None, *, window: float = 60.0) -> None:
        self.redis_url = redis_url
        self.window = window
        self._limiters: dict[tuple[str, int | None, int | None], Any] = {}
        self._daily: dict[tuple[str, int], int] = {}
        self._redis: Any = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)

    def _limiter(self, p: Principal) -> Any:
        key = (p.user, p.rpm, p.tpm)
        lim = self._limiters.get(key)
        if lim is None:
            if self._redis is not None:
                from ..client.redis_limits import RedisRateLimiter

                lim = RedisRateLimiter(self.redis_url or "", rpm=p.rpm, tpm=p.tpm, name=f"gateway:user:{p.user}",
                                       window=self.window, client=self._redis)
            else:
                lim = MemoryRateLimiter(p.rpm, p.tpm)
                lim.window = self.window
            self._limiters[key] = lim
        return lim

    # -- daily budget ------------------------------------------------------------------------------

    def _daily_key(self, user: str, day: int) -> str:
        return f"{{ernie_widget:gateway:daily}}:{user}:{day}"

    def _daily_used(self, user: str, day: int) -> int:
        if self._redis is not None:
            return int(self._redis.get(self._daily_key(user, day)) or 0)
        return self._daily.get((user, day), 0)

    def _daily_add(self, user: str, day: int, tokens: int) -> None:
        if tokens <= 0:
            return
        if self._redis is not None:
            pipe = self._redis.pipeline()
            pipe.incrby(self._daily_key(user, day), tokens)
            pipe.expire(self._daily_key(user, day), 2 * _DAY)
            pipe.execute()
            return
        self._daily[(user, day)] = self._daily.get((user, day), 0) + tokens
        for old in [k for k in self._daily if k[1] < day - 1]:
            del self._daily[old]

    def daily_used(self, user: str) -> int:
        return self._daily_used(user, int(time.time() // _DAY))

    # -- admission ---------------------------------------------------------------------------------

    def _admit_sync(self, p: Principal, estimate: int) -> Charge:
        now = time.time()
        if p.daily_tokens:
            used = self._daily_used(p.user, int(now // _DAY))
            if used >= p.daily_tokens:
                raise QuotaExceeded(
                    f"今日 token 额度已用完 / daily token budget of {p.daily_tokens} used up "
                    f"({used} tokens today, UTC)", "daily_budget_exceeded", _seconds_to_utc_midnight(now))
        if not (p.rpm or p.tpm):
            return Charge(p, estimate)
        lim = self._limiter(p)
        wait = lim.try_acquire(estimate)
        if wait > 0:
            what = []
            if p.rpm:
                what.append(f"{p.rpm} requests/min")
            if p.tpm:
                what.append(f"{p.tpm} tokens/min")
            raise QuotaExceeded(f"请求过于频繁 / rate limit exceeded ({', '.join(what)})", "rate_limit_exceeded",
                                wait)
        return Charge(p, estimate, lim)

    async def admit(self, p: Principal, estimate: int) -> Charge:
        """Charge one request of about ``estimate`` tokens, or raise `QuotaExceeded`."""
        if self._redis is None:
            return self._admit_sync(p, estimate)  # pure memory: no I/O, no thread hop
        return await asyncio.to_thread(self._admit_sync, p, estimate)

    def _settle_sync(self, charge: Charge, actual: int) -> None:
        if charge.principal.daily_tokens:
            self._daily_add(charge.principal.user, int(time.time() // _DAY), actual)
        if charge.limiter is not None and charge.principal.tpm:
            charge.limiter.reconcile(charge.estimate, actual)

    async def settle(self, charge: Charge, actual: int) -> None:
        """Replace the estimate with the tokens really used, and spend them from the daily budget."""
        if self._redis is None:
            self._settle_sync(charge, actual)
            return
        await asyncio.to_thread(self._settle_sync, charge, actual)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
