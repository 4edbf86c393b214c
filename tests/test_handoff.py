"""`Handoff`: the one way work on the private loop hands items and a result to a caller's thread."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ernie_widget.client.background import THREAD_NAME
from ernie_widget.client.handoff import Channel, Handoff, Signal


def test_items_arrive_in_order_then_done_then_the_result() -> None:
    async def produce(ch: Channel[int]) -> str:
        for i in range(5):
            ch.put(i)
        return "finished"

    h: Handoff[int, str] = Handoff(produce)
    items = []
    while (item := h.get(timeout=5)) is not Signal.DONE:
        items.append(item)
    assert items == [0, 1, 2, 3, 4]
    assert h.result(5) == "finished" and h.finished
    assert h.get() is Signal.DONE  # stays done


def test_get_returns_idle_when_nothing_came_within_the_timeout() -> None:
    release = threading.Event()

    async def produce(ch: Channel[str]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        ch.put("late")

    h: Handoff[str, None] = Handoff(produce)
    t0 = time.monotonic()
    assert h.get(timeout=0.1) is Signal.IDLE
    assert 0.08 < time.monotonic() - t0 < 2
    release.set()
    assert h.get(timeout=5) == "late"
    assert h.get(timeout=5) is Signal.DONE


def test_the_producers_exception_is_raised_by_result_after_its_items() -> None:
    async def produce(ch: Channel[int]) -> None:
        ch.put(1)
        raise ValueError("boom")

    h: Handoff[int, None] = Handoff(produce)
    assert h.get(timeout=5) == 1
    assert h.get(timeout=5) is Signal.DONE
    with pytest.raises(ValueError, match="boom"):
        h.result(5)


def test_cancel_waits_until_the_producer_has_cleaned_up() -> None:
    cleaned = threading.Event()
    started = threading.Event()

    async def produce(ch: Channel[int]) -> None:
        try:
            started.set()
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.2)  # closing a response takes a moment
            cleaned.set()

    h: Handoff[int, None] = Handoff(produce)
    assert started.wait(5)
    t0 = time.monotonic()
    h.cancel(wait=5)
    assert cleaned.is_set() and h.finished
    assert time.monotonic() - t0 >= 0.15


def test_a_slow_consumer_pauses_the_producer_at_the_high_water_mark() -> None:
    produced: list[int] = []

    async def produce(ch: Channel[int]) -> None:
        for i in range(100):
            produced.append(i)
            if ch.put(i):
                await ch.room()

    h: Handoff[int, None] = Handoff(produce, high_water=10)
    time.sleep(0.3)
    assert 10 < len(produced) <= 12  # paused just past the mark, not run ahead by 100
    got = []
    while (item := h.get(timeout=5)) is not Signal.DONE:
        got.append(item)
    assert got == list(range(100))


def test_the_producer_runs_on_the_private_loop_thread() -> None:
    async def produce(ch: Channel[str]) -> str:
        return threading.current_thread().name

    assert Handoff(produce).result(5) == THREAD_NAME
