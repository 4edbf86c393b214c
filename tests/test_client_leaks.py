"""Many streams through one client, half of them abandoned early, leave no sockets or threads behind."""

from __future__ import annotations

import asyncio
import gc
import os
import threading

try:  # tests/ may or may not be a package
    from tests.client_support import client_args
except ImportError:
    from client_support import client_args  # type: ignore[no-redef]

from ernie_widget.client import AsyncErnie, Ernie
from ernie_widget.testing import Answer, Fault

STREAMS = 200
SLACK_FDS = 6  # a few pooled keep-alive connections may differ between the two counts
SLACK_THREADS = 1


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _settle(sim) -> None:
    """Wait until the simulator has finished every response, so its sockets are counted fairly."""
    assert sim.wait_for(lambda: all(r.finished for r in sim.chat_requests), timeout=5)
    gc.collect()


def _script(sim, n: int) -> None:
    # abandoned streams get a slow answer, so they really are cut mid-stream; the rest are fast
    for i in range(n):
        if i % 2:
            sim.push(Answer(text="慢慢地说" * 10, chunk_size=2, delay=0.01))
        else:
            sim.push(Answer(text="很快" * 10, chunk_size=4))


def test_200_sync_streams_half_abandoned_leak_no_fds_or_threads(ernie_simulator):
    sim = ernie_simulator
    with Ernie(**client_args(sim, "qianfan")) as client:
        _script(sim, 20)  # warm up: the private loop, the pool and the simulator's connections exist
        for i in range(20):
            with client.stream(f"warm {i}") as stream:
                for _ in stream:
                    if i % 2:
                        break
        _settle(sim)
        fds, threads = _fds(), threading.active_count()

        _script(sim, STREAMS)
        abandoned = 0
        for i in range(STREAMS):
            stream = client.stream(f"q{i}")
            if i % 2:
                next(iter(stream))
                stream.close()
                abandoned += 1
            else:
                assert "".join(e.text for e in stream if e.type == "text") == "很快" * 10
        _settle(sim)

        assert abandoned == STREAMS // 2
        assert sum(r.disconnected for r in sim.chat_requests[20:]) == abandoned  # really cut mid-answer
        assert _fds() <= fds + SLACK_FDS
        assert threading.active_count() <= threads + SLACK_THREADS


def test_sync_stream_dropped_without_close_is_closed(ernie_simulator):
    # `for ev in client.stream(q): break` never calls close(); the stream must not keep reading
    # (and holding a connection and a concurrency slot) once nothing refers to it.
    sim = ernie_simulator
    with Ernie(**client_args(sim, "qianfan", max_concurrency=1)) as client:
        for i in range(3):
            sim.push(Fault.endless(interval=0.01))
            for _ in client.stream(f"q{i}"):
                break
            gc.collect()
            assert sim.wait_for(lambda: sim.chat_requests[-1].disconnected, timeout=1.0)
        assert client.chat("still usable").text  # the one concurrency slot was released each time


def test_200_async_streams_half_abandoned_leak_no_fds(ernie_simulator):
    sim = ernie_simulator

    async def run() -> tuple[int, int]:
        async with AsyncErnie(**client_args(sim, "qianfan")) as client:

            async def round_(n: int) -> None:
                for i in range(n):
                    async with client.stream(f"q{i}") as stream:
                        async for _ in stream:
                            if i % 2:
                                break

            _script(sim, 20)
            await round_(20)
            await asyncio.to_thread(_settle, sim)
            before = _fds()
            _script(sim, STREAMS)
            await round_(STREAMS)
            await asyncio.to_thread(_settle, sim)
            return before, _fds()

    before, after = asyncio.run(run())
    assert sum(r.disconnected for r in sim.chat_requests[20:]) == STREAMS // 2
    assert after <= before + SLACK_FDS
