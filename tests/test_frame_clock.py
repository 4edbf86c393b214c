"""The flush grid the page tunes (ernie_widget/frame_clock.py) and the batcher that flushes on it (deltas.py)."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ernie_widget.deltas import DeltaBatcher
from ernie_widget.frame_clock import MAX_REPORTED, TARGET_WAIT, FrameClock, FrameReport, parse_frame_report

PERIOD = 1 / 60


def test_a_report_is_read_as_seq_to_wait() -> None:
    report = parse_frame_report({"type": "frame_timing", "mid": 3, "waits": [[0, 12.5], [1, 0], [2, 16]]})
    assert report == FrameReport(3, {0: 12.5, 1: 0.0, 2: 16.0})


def test_malformed_reports_are_dropped() -> None:
    for bad in ({"mid": True, "waits": [[0, 1]]}, {"mid": -1, "waits": [[0, 1]]}, {"mid": 1, "waits": "x"},
                {"mid": 1, "waits": [[0, 1, 2]]}, {"mid": 1, "waits": [[0, float("nan")]]},
                {"mid": 1, "waits": [[0, float("inf")]]}, {"mid": 1, "waits": [[0, -1]]},
                {"mid": 1, "waits": [[0, 1e9]]}, {"mid": 1, "waits": [["0", 1]]}, {"mid": 1, "waits": [[0, True]]},
                {"mid": 1, "waits": [[2**60, 1]]}, {"mid": 1, "waits": []}, {"waits": [[0, 1]]}):
        assert parse_frame_report(bad) is None, bad


def test_a_huge_report_is_read_only_as_far_as_the_bound() -> None:
    report = parse_frame_report({"mid": 1, "waits": [[i, 1.0] for i in range(100_000)]})
    assert report is not None and len(report.waits_ms) == MAX_REPORTED


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=4), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "mid", "waits", "x"]), json_values, max_size=4))
def test_any_json_content_is_either_a_bounded_report_or_none(content: dict[str, Any]) -> None:
    report = parse_frame_report(content)
    if report is not None:
        assert 0 < len(report.waits_ms) <= MAX_REPORTED
        assert all(0 <= ms <= 1000 and math.isfinite(ms) for ms in report.waits_ms.values())


def test_the_grid_moves_by_the_median_excess_wait_and_wraps_within_a_period() -> None:
    clock = FrameClock(PERIOD)
    assert clock.next_tick(1.0001) == clock.anchor + math.ceil(1.0001 / PERIOD) * PERIOD
    assert not clock.move([0.012] * 7)  # too few to judge
    assert clock.move([0.012] * 6 + [0.011, 0.013, 0.0])
    assert math.isclose(clock.anchor, 0.012 - TARGET_WAIT) and clock.version == 1
    tick = clock.next_tick(10.0)
    assert tick >= 10.0 and math.isclose((tick - 0.007) / PERIOD, round((tick - 0.007) / PERIOD), abs_tol=1e-6)
    clock.move([0.0] * 8)  # arrived after the frame began: move earlier, modulo the period
    assert 0 <= clock.anchor < PERIOD and math.isclose(clock.anchor, 0.007 - TARGET_WAIT)


def _stream(batcher: DeltaBatcher, rate: float, seconds: float) -> None:
    async def run() -> None:
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            batcher.add(text=f"{i} ")
        batcher.close()

    asyncio.run(run())


def test_a_fast_stream_flushes_on_the_grid_at_most_once_per_frame() -> None:
    clock = FrameClock(PERIOD)
    clock.anchor = 0.004
    sent: list[tuple[float, dict[str, Any]]] = []
    batcher = DeltaBatcher(lambda m: sent.append((time.monotonic(), m)), mid=1, clock=clock)
    _stream(batcher, rate=200, seconds=1.5)
    assert "".join(m["text"] for _, m in sent) == "".join(f"{i} " for i in range(300))
    assert [m["seq"] for _, m in sent] == list(range(len(sent)))
    span = sent[-1][0] - sent[0][0]
    assert len(sent) / span <= 62  # ≤ 60 messages/s (+ the first, sent at once, and the last, on close)
    # timer flushes sit on the grid (the loop wakes a little late, never early)
    phases = [((t - clock.anchor) % PERIOD) for t, _ in sent[1:-1]]
    assert statistics.median(phases) < 0.004, phases


def test_only_waits_of_grid_flushes_made_since_the_last_move_move_the_grid() -> None:
    clock = FrameClock(PERIOD)
    sent: list[dict[str, Any]] = []
    batcher = DeltaBatcher(sent.append, mid=5, clock=clock)
    _stream(batcher, rate=200, seconds=0.5)
    grid = [m["seq"] for m in sent[1:-1]]  # the first went out at once, the last on close
    assert len(grid) >= 10
    assert not batcher.on_frame_report(FrameReport(4, dict.fromkeys(grid, 12.0)))  # another answer's
    assert not batcher.on_frame_report(FrameReport(5, {sent[0]["seq"]: 12.0, sent[-1]["seq"]: 12.0}))
    assert batcher.on_frame_report(FrameReport(5, dict.fromkeys(grid, 12.0)))
    assert math.isclose(clock.anchor, 0.012 - TARGET_WAIT)
    # the same flushes again (made before the move): judged already
    assert not batcher.on_frame_report(FrameReport(5, dict.fromkeys(grid, 3.0)))
    assert clock.version == 1

