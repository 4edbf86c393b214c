"""RedisRateLimiter: one RPM/TPM budget shared by several processes through a real redis-server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid

import pytest

from ernie_widget.client import AsyncErnie
from ernie_widget.client.limits import make_rate_limiter
from ernie_widget.client.redis_limits import RedisRateLimiter

pytestmark = pytest.mark.timeout(60)


def _name() -> str:
    return "t-" + uuid.uuid4().hex[:8]


_WORKER = """
import json, sys, time
from ernie_widget.client.redis_limits import RedisRateLimiter
url, name, rpm, tpm, tokens, tries, start_at = sys.argv[1:]
lim = RedisRateLimiter(url, rpm=int(rpm) or None, tpm=int(tpm) or None, name=name)
while time.time() < float(start_at):
    time.sleep(0.001)
granted = sum(1 for _ in range(int(tries)) if lim.try_acquire(int(tokens)) == 0)
print(json.dumps({"granted": granted}))
"""


def _run_workers(url: str, name: str, *, n: int, rpm: int, tpm: int, tokens: int, tries: int) -> list[int]:
    start_at = time.time() + 1.5  # every process imports first, then all start together
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, url, name, str(rpm), str(tpm), str(tokens), str(tries),
                          str(start_at)], stdout=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=30)
        assert p.returncode == 0
        out.append(json.loads(stdout.strip().splitlines()[-1])["granted"])
    return out


def test_processes_share_one_rpm_budget(redis_url: str) -> None:
    granted = _run_workers(redis_url, _name(), n=3, rpm=10, tpm=0, tokens=1, tries=10)
    assert sum(granted) == 10
    assert all(g <= 10 for g in granted)


def test_processes_share_one_tpm_budget(redis_url: str) -> None:
    granted = _run_workers(redis_url, _name(), n=3, rpm=0, tpm=1000, tokens=100, tries=8)
    assert sum(granted) == 10


def test_a_full_window_reports_how_long_to_wait(redis_url: str) -> None:
    lim = RedisRateLimiter(redis_url, rpm=2, name=_name())
    assert lim.try_acquire(1) == 0
    assert lim.try_acquire(1) == 0
    wait = lim.try_acquire(1)
    assert 58 < wait <= 60
    assert lim.usage()[0] == 2


def test_the_window_slides(redis_url: str) -> None:
    lim = RedisRateLimiter(redis_url, rpm=2, name=_name(), window=0.5)
    assert lim.try_acquire(1) == 0
    time.sleep(0.2)
    assert lim.try_acquire(1) == 0
    wait = lim.try_acquire(1)
    assert 0.2 < wait <= 0.31  # until the first charge leaves the window, not the second
    time.sleep(wait + 0.02)
    assert lim.try_acquire(1) == 0
    assert lim.try_acquire(1) > 0


def test_tokens_wait_for_enough_old_charges_to_expire(redis_url: str) -> None:
    lim = RedisRateLimiter(redis_url, tpm=100, name=_name(), window=1.0)
    assert lim.try_acquire(40) == 0
    time.sleep(0.3)
    assert lim.try_acquire(40) == 0
    wait = lim.try_acquire(50)  # needs 30 freed: only the first charge has to expire
    assert 0.5 < wait <= 0.71
    # one request larger than the whole budget still goes through an empty window (as in memory)
    big = RedisRateLimiter(redis_url, tpm=100, name=_name())
    assert big.try_acquire(500) == 0


def test_reconcile_replaces_the_estimate_with_the_real_usage(redis_url: str) -> None:
    lim = RedisRateLimiter(redis_url, tpm=100, name=_name())
    assert lim.try_acquire(80) == 0
    assert lim.try_acquire(80) > 0
    lim.reconcile(80, 10)
    assert lim.usage() == (1, 10)
    assert lim.try_acquire(80) == 0
    assert lim.usage() == (2, 90)


def test_reconcile_after_the_charge_expired_adds_a_correction(redis_url: str) -> None:
    lim = RedisRateLimiter(redis_url, tpm=100, name=_name(), window=0.2)
    assert lim.try_acquire(50) == 0
    time.sleep(0.25)
    assert lim.try_acquire(10) == 0  # sweeps the expired charge
    lim.reconcile(50, 70)  # the answer used 20 more than estimated: charged now
    assert lim.usage()[1] == 30


def test_names_are_separate_budgets(redis_url: str) -> None:
    a = RedisRateLimiter(redis_url, rpm=1, name=_name())
    b = RedisRateLimiter(redis_url, rpm=1, name=_name())
    assert a.try_acquire(1) == 0
    assert b.try_acquire(1) == 0
    assert a.try_acquire(1) > 0


def test_async_acquire_waits_for_the_window(redis_url: str) -> None:
    lim = RedisRateLimiter(redis_url, rpm=1, name=_name(), window=0.4)

    async def run() -> float:
        await lim.acquire(1)
        t0 = time.monotonic()
        await lim.acquire(1)
        return time.monotonic() - t0

    waited = asyncio.run(run())
    assert 0.3 < waited < 1.0


def test_the_client_shares_its_limit_through_redis(redis_url: str, ernie_simulator) -> None:  # type: ignore[no-untyped-def]
    backend = redis_url
    assert isinstance(make_rate_limiter(2, None, backend), RedisRateLimiter)
    base = ernie_simulator.base_url("openai")

    async def run() -> None:
        # two clients stand for two processes: same Redis, the default limiter name, one budget of 2 requests/min
        a = AsyncErnie("openai", base_url=base, rpm=2, rate_limit_backend=backend)
        b = AsyncErnie("openai", base_url=base, rpm=2, rate_limit_backend=backend)
        for client in (a, b):
            assert isinstance(client._rate_limiter, RedisRateLimiter)
            client._rate_limiter.reset()
        assert (await a.chat("one")).text
        assert (await b.chat("two")).text
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(a.chat("three"), 0.5)
        assert len(ernie_simulator.chat_requests) == 2
        await a.aclose()
        await b.aclose()

    asyncio.run(run())
