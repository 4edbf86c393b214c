"""Load and soak: many streams through one client leave memory, threads and descriptors flat; RPM holds.

Sizes suit a 2-core CI runner (the simulator shares this process and its GIL). Figures go to
`.results/soak.json` and `.results/rate_limit.json` for RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ernie_widget.client import AsyncErnie, Ernie, ErnieError
from ernie_widget.client.limits import MemoryRateLimiter
from ernie_widget.testing import ErnieSimulator
from tests.client_support import client_args

from ._support import busiest_window, open_fds, rss_bytes, save_result

pytestmark = pytest.mark.slow

TEXT = "流式输出，稳定如常。steady " * 4  # 84 characters
SEQUENTIAL = 1000
CONCURRENT = 50
ROUNDS = 10
RSS_SLACK = 12 * 1024 * 1024  # allocator noise; a per-stream leak of 12 KiB over 1,000 streams would exceed it
FD_SLACK = 4  # idle keep-alive connections (two fds each: client and simulator side) may differ by one or two
# Concurrent answers last ~0.4 s, so the 50 overlap even on a loaded runner; the warm-up round is slower still,
# so it surely opens all 50 pooled connections and later rounds cannot need more.
CONCURRENT_ANSWER = {"text": TEXT, "chunk_size": 6, "delay": 0.03}
WARM_UP_ANSWER = {"text": TEXT, "chunk_size": 6, "delay": 0.08}
_soak: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _record() -> Any:
    yield
    if _soak:
        save_result("soak", _soak)


def _vitals() -> dict[str, int]:
    gc.collect()
    return {"rss": rss_bytes(), "threads": threading.active_count(), "fds": open_fds()}


def _assert_flat(before: dict[str, int], after: dict[str, int]) -> None:
    assert after["rss"] - before["rss"] < RSS_SLACK, (before, after)
    assert after["threads"] <= before["threads"], (before, after)
    assert after["fds"] <= before["fds"] + FD_SLACK, (before, after)


def _settle(sim: ErnieSimulator) -> None:
    assert sim.wait_for(lambda: all(r.finished for r in sim.all_requests), timeout=10)


def _drain(stream: Any) -> tuple[str, int]:
    text, chunks = [], 0
    for ev in stream:
        if ev.type == "text":
            text.append(ev.text)
            chunks += 1
    return "".join(text), chunks


def test_1000_sequential_streams_through_one_client_stay_flat(ernie_simulator: ErnieSimulator) -> None:
    sim = ernie_simulator
    sim.set_answer(text=TEXT, chunk_size=4)
    with Ernie(**client_args(sim, "qianfan")) as client:
        for i in range(50):  # warm up: the loop thread, the pool, the allocator
            _drain(client.stream(f"warm {i}"))
        _settle(sim)
        sim.clear()  # the simulator keeps a record per request, in this process: not ours to count
        before = _vitals()
        errors = chunks = seen = 0
        t0 = time.monotonic()
        for i in range(SEQUENTIAL):
            try:
                text, n = _drain(client.stream(f"q{i}"))
                chunks += n
                errors += text != TEXT
            except ErnieError:
                errors += 1
            if i % 100 == 99:
                seen += len(sim.chat_requests)
                sim.clear()
        elapsed = time.monotonic() - t0
        _settle(sim)
        after = _vitals()
    assert errors == 0 and seen == SEQUENTIAL
    _soak["sequential"] = {"streams": SEQUENTIAL, "errors": errors, "seconds": round(elapsed, 2),
                           "streams_per_s": round(SEQUENTIAL / elapsed, 1), "chunks_per_s": round(chunks / elapsed),
                           "before": before, "after": after}
    _assert_flat(before, after)


def test_50_concurrent_streams_through_one_sync_client_stay_flat(ernie_simulator: ErnieSimulator) -> None:
    sim = ernie_simulator
    sim.set_answer(**WARM_UP_ANSWER)
    with Ernie(**client_args(sim, "qianfan", max_concurrency=CONCURRENT)) as client, \
            ThreadPoolExecutor(CONCURRENT) as pool:

        def one_round(tag: str) -> list[str | BaseException]:
            def ask(i: int) -> str | BaseException:
                try:
                    return _drain(client.stream(f"{tag} {i}"))[0]
                except ErnieError as err:
                    return err

            return list(pool.map(ask, range(CONCURRENT)))

        one_round("warm")  # starts the 50 worker threads and fills the pool
        _settle(sim)
        sim.clear()
        sim.set_answer(**CONCURRENT_ANSWER)
        before = _vitals()
        errors = peak = 0
        t0 = time.monotonic()
        for r in range(ROUNDS):
            results = one_round(f"round {r}")
            errors += sum(1 for x in results if x != TEXT)
            _settle(sim)
            assert len(sim.chat_requests) == CONCURRENT
            peak = max(peak, sim.peak_in_flight)
            sim.clear()
        elapsed = time.monotonic() - t0
        after = _vitals()
    assert errors == 0
    assert peak == CONCURRENT  # they really ran at the same time
    _soak["concurrent_sync"] = {"streams": CONCURRENT * ROUNDS, "concurrency": CONCURRENT, "errors": errors,
                                "peak_in_flight": peak, "seconds": round(elapsed, 2),
                                "streams_per_s": round(CONCURRENT * ROUNDS / elapsed, 1),
                                "before": before, "after": after}
    _assert_flat(before, after)


def test_50_concurrent_streams_through_one_async_client_stay_flat(ernie_simulator: ErnieSimulator) -> None:
    sim = ernie_simulator
    sim.set_answer(**WARM_UP_ANSWER)

    async def run() -> dict[str, Any]:
        async with AsyncErnie(**client_args(sim, "qianfan", max_concurrency=CONCURRENT)) as client:

            async def ask(tag: str) -> str | BaseException:
                try:
                    parts = []
                    async with client.stream(tag) as stream:
                        async for ev in stream:
                            if ev.type == "text":
                                parts.append(ev.text)
                    return "".join(parts)
                except ErnieError as err:
                    return err

            async def one_round(tag: str) -> list[str | BaseException]:
                return await asyncio.gather(*(ask(f"{tag} {i}") for i in range(CONCURRENT)))

            await one_round("warm")
            await asyncio.to_thread(_settle, sim)
            sim.clear()
            sim.set_answer(**CONCURRENT_ANSWER)
            before = _vitals()
            errors = peak = 0
            t0 = time.monotonic()
            for r in range(ROUNDS):
                results = await one_round(f"round {r}")
                errors += sum(1 for x in results if x != TEXT)
                await asyncio.to_thread(_settle, sim)
                peak = max(peak, sim.peak_in_flight)
                sim.clear()
            elapsed = time.monotonic() - t0
            after = _vitals()
        return {"streams": CONCURRENT * ROUNDS, "concurrency": CONCURRENT, "errors": errors, "peak_in_flight": peak,
                "seconds": round(elapsed, 2), "streams_per_s": round(CONCURRENT * ROUNDS / elapsed, 1),
                "before": before, "after": after}

    figures = asyncio.run(run())
    _soak["concurrent_async"] = figures
    assert figures["errors"] == 0 and figures["peak_in_flight"] == CONCURRENT
    _assert_flat(figures["before"], figures["after"])


# -- rate limits ----------------------------------------------------------------------------------------


JITTER = 0.1  # a request is stamped by the limiter, then reaches the simulator a little later


def test_rpm_holds_under_50_concurrent_callers(ernie_simulator: ErnieSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = ernie_simulator
    rpm, window = 10, 2.0
    monkeypatch.setattr(MemoryRateLimiter, "window", window)  # one "minute" of 2 s, for speed
    sim.set_answer(text="ok", chunk_size=2)
    with Ernie(**client_args(sim, "qianfan", rpm=rpm, max_concurrency=CONCURRENT)) as client, \
            ThreadPoolExecutor(CONCURRENT) as pool:
        t0 = time.monotonic()
        texts = list(pool.map(lambda i: client.chat(f"caller {i}").text, range(CONCURRENT)))
        elapsed = time.monotonic() - t0
    starts = sorted(r.started for r in sim.chat_requests)
    assert len(starts) == CONCURRENT and all(texts)
    busiest = busiest_window(starts, window - JITTER)
    # 50 requests at 10 per window: five windows' worth, the first one at once
    floor = (CONCURRENT // rpm - 1) * window
    save_result("rate_limit", {"rpm": rpm, "window_s": window, "callers": CONCURRENT, "requests": len(starts),
                               "busiest_window": busiest, "seconds": round(elapsed, 2), "ideal_seconds": floor,
                               "jitter_s": JITTER})
    assert busiest <= rpm, f"{busiest} requests within one {window}s window (rpm={rpm})"
    assert floor - JITTER <= elapsed < floor + window  # the budget is used, not wasted
