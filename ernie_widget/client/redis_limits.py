"""RPM/TPM limits shared through Redis, so several processes (gateway replicas, batch workers) spend one budget.

Same contract as `MemoryRateLimiter` — ``await acquire(tokens)``, ``reconcile(estimated, actual)`` and the
non-blocking ``try_acquire(tokens) -> seconds to wait`` — over the same sliding one-minute windows. Each
check-and-charge is one Lua script, so it is atomic across processes, and the clock is Redis' own
(``TIME``), so replicas whose clocks disagree still share one window.

Keys (one hash tag per limiter, so a Redis Cluster keeps them in one slot)::

    {prefix:name}:req     sorted set  request id -> time (ms)          requests in the window
    {prefix:name}:tok     sorted set  charge id  -> time (ms)          token charges in the window
    {prefix:name}:tokn    hash        charge id  -> tokens             the size of each charge
    {prefix:name}:toksum  string      sum of the charges in the window

Every key expires two windows after its last use, so an idle limiter leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import uuid
from typing import Any

__all__ = ["RedisRateLimiter"]

# KEYS: req, tok, tokn, toksum. ARGV: rpm, tpm, tokens, id, window_ms.
# Returns {1, "0"} when charged, or {0, "<ms to wait>"}.
_ACQUIRE = """
local req, tok, tokn, toksum = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local id, window = ARGV[4], tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = now - window
redis.call('ZREMRANGEBYSCORE', req, '-inf', cutoff)
local sum = tonumber(redis.call('GET', toksum) or '0')
local old = redis.call('ZRANGEBYSCORE', tok, '-inf', cutoff)
if #old > 0 then
  local sizes = redis.call('HMGET', tokn, unpack(old))
  for i = 1, #old do sum = sum - tonumber(sizes[i] or '0') end
  redis.call('HDEL', tokn, unpack(old))
  redis.call('ZREMRANGEBYSCORE', tok, '-inf', cutoff)
  redis.call('SET', toksum, string.format('%d', sum))
end
local wait = 0
if rpm > 0 and redis.call('ZCARD', req) >= rpm then
  local first = redis.call('ZRANGE', req, 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(first[2]) + window - now)
end
if tpm > 0 and redis.call('ZCARD', tok) > 0 and sum + tokens > tpm then
  -- wait until enough of the oldest charges expire
  local need = sum + tokens - tpm
  local entries = redis.call('ZRANGE', tok, 0, -1, 'WITHSCORES')
  local freed, until_ms = 0, nil
  for i = 1, #entries, 2 do
    freed = freed + tonumber(redis.call('HGET', tokn, entries[i]) or '0')
    until_ms = tonumber(entries[i + 1]) + window - now
    if freed >= need then break end
  end
  wait = math.max(wait, until_ms or 0)
end
if wait > 0 then return {0, tostring(wait)} end
redis.call('ZADD', req, now, id)
if tpm > 0 then
  redis.call('ZADD', tok, now, id)
  redis.call('HSET', tokn, id, tokens)
  redis.call('INCRBY', toksum, tokens)
end
for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, window * 2) end
return {1, '0'}
"""

# KEYS: tok, tokn, toksum. ARGV: charge id, delta, correction id, window_ms.
# Adjusts a charge still in the window, or adds a correction charge now if it has expired.
_RECONCILE = """
local tok, tokn, toksum = KEYS[1], KEYS[2], KEYS[3]
local id, delta, fix, window = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
if redis.call('HEXISTS', tokn, id) == 1 then
  redis.call('HINCRBY', tokn, id, delta)
else
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', tok, now, fix)
  redis.call('HSET', tokn, fix, delta)
end
redis.call('INCRBY', toksum, delta)
for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, window * 2) end
return 1
"""


class RedisRateLimiter:
    """Requests (rpm) and tokens (tpm) per sliding window, shared by every process using the same Redis and name.

    ``name`` separates budgets (the gateway uses one per user); ``window`` is 60 s except in tests.
    Uses the synchronous redis client (thread-safe, usable from any event loop); ``acquire`` runs the
    round trip in a worker thread so it never blocks the caller's loop.
    """

    def __init__(
        self,
        url: str,
        rpm: int | None = None,
        tpm: int | None = None,
        *,
        name: str = "default",
        prefix: str = "ernie_widget:rl",
        window: float = 60.0,
        client: Any = None,
    ) -> None:
        if client is None:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.url = url
        self.rpm = rpm
        self.tpm = tpm
        self.name = name
        self.window = window
        self._redis = client
        self._acquire = client.register_script(_ACQUIRE)
        self._reconcile = client.register_script(_RECONCILE)
        base = f"{{{prefix}:{name}}}"
        self._keys = [f"{base}:req", f"{base}:tok", f"{base}:tokn", f"{base}:toksum"]
        # Charges this process made, newest last: reconcile() adjusts the newest one of that size, as
        # MemoryRateLimiter does. Bounded: a charge older than the window cannot be adjusted anyway.
        self._mine: collections.deque[tuple[str, int]] = collections.deque(maxlen=4096)
        self._lock = threading.Lock()
        self._pending: set[asyncio.Future[Any]] = set()

    @property
    def _window_ms(self) -> int:
        return max(1, int(self.window * 1000))

    def try_acquire(self, tokens: int) -> float:
        """Take a slot now and return 0, or return how many seconds to wait before trying again (blocking call)."""
        charge = uuid.uuid4().hex
        granted, wait_ms = self._acquire(
            keys=self._keys,
            args=[int(self.rpm or 0), int(self.tpm or 0), int(tokens), charge, self._window_ms],
        )
        if int(granted):
            if self.tpm:
                with self._lock:
                    self._mine.append((charge, int(tokens)))
            return 0.0
        return max(float(wait_ms) / 1000.0, 0.001)

    async def acquire(self, tokens: int) -> None:
        """Wait until a request of ``tokens`` fits both windows, then charge it."""
        while True:
            wait = await asyncio.to_thread(self.try_acquire, tokens)
            if wait <= 0:
                return
            await asyncio.sleep(min(wait + 0.001, 5.0))

    def reconcile(self, estimated: int, actual: int) -> None:
        """Replace an estimated charge with the reported usage (runs in a worker thread when a loop is running)."""
        if not self.tpm or actual == estimated:
            return
        with self._lock:
            charge = None
            for i in range(len(self._mine) - 1, -1, -1):
                if self._mine[i][1] == estimated:
                    charge = self._mine[i][0]
                    del self._mine[i]
                    break
        args = [charge or "-", int(actual) - int(estimated), uuid.uuid4().hex, self._window_ms]
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._reconcile(keys=self._keys[1:], args=args)
            return
        # Called from async code (the client's request loop): never block the loop on a round trip.
        fut = loop.run_in_executor(None, lambda: self._reconcile(keys=self._keys[1:], args=args))
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)

    def usage(self) -> tuple[int, int]:
        """(requests, tokens) charged in the current window, for metrics and tests (expired entries included
        until the next acquire sweeps them)."""
        pipe = self._redis.pipeline()
        pipe.zcard(self._keys[0])
        pipe.get(self._keys[3])
        requests, tokens = pipe.execute()
        return int(requests), int(tokens or 0)

    def reset(self) -> None:
        """Forget every charge of this limiter (all processes)."""
        self._redis.delete(*self._keys)
        with self._lock:
            self._mine.clear()

    def close(self) -> None:
        self._redis.close()

    def __repr__(self) -> str:
        return f"RedisRateLimiter(name={self.name!r}, rpm={self.rpm}, tpm={self.tpm}, window={self.window:g})"
