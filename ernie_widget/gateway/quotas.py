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
    """The user is over a limit; ``retry_after`` says when the request would fit (whole seconds, ≥ 1).
    ``status`` 400 means it never will (a request larger than the user's whole TPM)."""

    def __init__(self, message: str, code: str, retry_after: float | None, status: int = 429) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = None if retry_after is None else max(1, math.ceil(retry_after))


#: tokens reserved from a daily budget for an answer whose request sets no max_tokens
DEFAULT_OUTPUT_RESERVE = 1024

# Reserve from a daily budget in one step (the counter holds settled + reserved tokens): concurrent
# requests, on one replica or many, never see the same remaining budget twice.
_RESERVE_LUA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local remaining = tonumber(ARGV[1]) - used
if remaining <= tonumber(ARGV[2]) then return {0, used} end
local reserve = math.min(remaining, tonumber(ARGV[3]))
redis.call('INCRBY', KEYS[1], reserve)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {reserve, used}
"""


@dataclass
class Charge:
    """What `Quotas.admit` charged for one request, to be settled with the real usage.

    ``estimate`` went to the TPM window, ``reserved`` to the daily budget (of UTC day ``day``);
    ``max_tokens`` is the cap the answer must keep to so the reservation holds (None: no cap needed)."""

    principal: Principal
    estimate: int
    limiter: Any = None
    reserved: int = 0
    day: int = 0
    max_tokens: int | None = None


def _seconds_to_utc_midnight(now: float) -> float:
    return _DAY - (now % _DAY)


class Quotas:
    """Admits or refuses requests per user. ``redis_url`` shares every window and budget between processes.

    Users are counted by `Principal.id` (``key:alice`` and ``jwt:alice`` are two users). Admission
    reserves tokens at once — from the TPM window (prompt + max_tokens) and from the daily budget
    (prompt + max_tokens, or `DEFAULT_OUTPUT_RESERVE`, at most what remains, the answer then capped to
    fit) — and `settle` replaces the reservation with the real usage.
    """

    def __init__(self, redis_url: str | None = None, *, window: float = 60.0) -> None:
        self.redis_url = redis_url
        self.window = window
        self._limiters: dict[tuple[str, int | None, int | None], Any] = {}
        self._daily: dict[tuple[str, int], int] = {}
        self._redis: Any = None
        self._reserve_script: Any = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
            self._reserve_script = self._redis.register_script(_RESERVE_LUA)

    def _limiter(self, p: Principal) -> Any:
        key = (p.id, p.rpm, p.tpm)
        lim = self._limiters.get(key)
        if lim is None:
            if self._redis is not None:
                from ..client.redis_limits import RedisRateLimiter

                lim = RedisRateLimiter(self.redis_url or "", rpm=p.rpm, tpm=p.tpm, name=f"gateway:user:{p.id}",
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

    def _daily_reserve(self, user: str, day: int, budget: int, floor: int, want: int) -> tuple[int, int]:
        """(reserved, used before): at most ``want`` tokens, none unless more than ``floor`` remain."""
        if self._redis is not None:
            reserved, used = self._reserve_script(keys=[self._daily_key(user, day)],
                                                  args=[budget, floor, want, 2 * _DAY])
            return int(reserved), int(used)
        used = self._daily.get((user, day), 0)
        remaining = budget - used
        if remaining <= floor:
            return 0, used
        reserved = min(remaining, want)
        self._daily[(user, day)] = used + reserved
        for old in [k for k in self._daily if k[1] < day - 1]:
            del self._daily[old]
        return reserved, used

    def _daily_add(self, user: str, day: int, tokens: int) -> None:
        if tokens == 0:
            return
        if self._redis is not None:
            pipe = self._redis.pipeline()
            pipe.incrby(self._daily_key(user, day), tokens)
            pipe.expire(self._daily_key(user, day), 2 * _DAY)
            pipe.execute()
            return
        if (user, day) in self._daily or tokens > 0:
            self._daily[(user, day)] = max(0, self._daily.get((user, day), 0) + tokens)

    def daily_used(self, user: str) -> int:
        """Tokens spent today (UTC) by the user with `Principal.id` ``user``, reservations in flight included."""
        return self._daily_used(user, int(time.time() // _DAY))

    # -- admission ---------------------------------------------------------------------------------

    def _admit_sync(self, p: Principal, prompt: int, max_tokens: int | None) -> Charge:
        now = time.time()
        day = int(now // _DAY)
        reserved = 0
        cap: int | None = None
        if p.daily_tokens:
            want = prompt + (max_tokens or DEFAULT_OUTPUT_RESERVE)
            reserved, used = self._daily_reserve(p.id, day, p.daily_tokens, prompt, want)
            if not reserved:
                raise QuotaExceeded(
                    f"今日 token 额度已用完 / daily token budget of {p.daily_tokens} used up "
                    f"({used} tokens today, UTC, answers in flight included)", "daily_budget_exceeded",
                    _seconds_to_utc_midnight(now))
            if reserved < want:  # the budget's end: the answer must fit in what was reserved
                cap = reserved - prompt
        estimate = prompt + (cap or max_tokens or 0)
        if not (p.rpm or p.tpm):
            return Charge(p, estimate, None, reserved, day, cap)
        try:
            if p.tpm and estimate > p.tpm:
                raise QuotaExceeded(
                    f"请求超过每分钟 token 上限 / the request (~{estimate} tokens with max_tokens) is larger than "
                    f"the limit of {p.tpm} tokens/min; lower max_tokens or shorten the prompt",
                    "request_exceeds_tpm", None, status=400)
            lim = self._limiter(p)
            wait = lim.try_acquire(estimate)
            if wait > 0:
                what = []
                if p.rpm:
                    what.append(f"{p.rpm} requests/min")
                if p.tpm:
                    what.append(f"{p.tpm} tokens/min")
                raise QuotaExceeded(f"请求过于频繁 / rate limit exceeded ({', '.join(what)})",
                                    "rate_limit_exceeded", wait)
        except BaseException:
            if reserved:
                self._daily_add(p.id, day, -reserved)
            raise
        return Charge(p, estimate, lim, reserved, day, cap)

    async def admit(self, p: Principal, prompt: int, max_tokens: int | None = None) -> Charge:
        """Charge one request (``prompt`` tokens, asking for up to ``max_tokens``), or raise `QuotaExceeded`."""
        if self._redis is None:
            return self._admit_sync(p, prompt, max_tokens)  # pure memory: no I/O, no thread hop
        return await asyncio.to_thread(self._admit_sync, p, prompt, max_tokens)

    def _settle_sync(self, charge: Charge, actual: int) -> None:
        if charge.principal.daily_tokens:
            self._daily_add(charge.principal.id, charge.day, actual - charge.reserved)
        if charge.limiter is not None and charge.principal.tpm:
            charge.limiter.reconcile(charge.estimate, actual)

    async def settle(self, charge: Charge, actual: int) -> None:
        """Replace the reservation with the tokens really used."""
        if self._redis is None:
            self._settle_sync(charge, actual)
            return
        await asyncio.to_thread(self._settle_sync, charge, actual)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
