"""The page's frame grid, learned from its reports, so coalesced deltas reach the page just before it paints.

Why: at most one delta message per frame (DeltaBatcher) and a page that renders in ``requestAnimationFrame`` make
a fast-streamed chunk wait twice, on two clocks that know nothing of each other: up to 1/60 s for the kernel's
flush, then up to 1/60 s for the page's next frame. The page reports, for the deltas it rendered, how long each
waited between arriving and the frame that painted it; the kernel moves its flush grid by the typical excess,
so later flushes arrive `TARGET_WAIT` before a frame. Measured in JupyterLab and Chromium at 200 chunks/s, this
takes the page's wait from 0–16.7 ms down to a few ms (docs/architecture.md, "Streaming latency").

Only flushes made on the grid (the batcher's timer) are judged, and only those made since the last move: a
report that mixes flushes before and after a move would correct twice. A page whose frames are not 60 Hz keeps
working: the grid stays 1/60 s (≤ 60 messages/s), phase moves are harmless where they cannot help.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

__all__ = ["FrameClock", "FrameReport", "parse_frame_report"]

#: how early a grid flush should reach the page before its frame: room for the relay's jitter (a flush that
#: arrives after the frame began waits a whole frame)
TARGET_WAIT = 0.005
#: fewest judged deltas in a report before the grid moves (a median of fewer is noise)
MIN_JUDGED = 8
MAX_REPORTED = 64  # entries read from one report; the page sends 24
MAX_WAIT_MS = 1000.0


@dataclass(frozen=True)
class FrameReport:
    """From the page: for answer `mid`, the wait in ms between each delta's arrival and its frame, by seq."""

    mid: int
    waits_ms: Mapping[int, float]


def parse_frame_report(content: Mapping[str, Any]) -> FrameReport | None:
    """`{"type": "frame_timing", "mid", "waits": [[seq, ms], …]}` checked and bounded; None when malformed.

    Timing hints only: a malformed report is dropped without a notice (nothing the user did or can fix).
    """
    mid, waits = content.get("mid"), content.get("waits")
    if not _is_int(mid) or not isinstance(waits, list):
        return None
    parsed: dict[int, float] = {}
    for entry in waits[:MAX_REPORTED]:
        if not (isinstance(entry, list) and len(entry) == 2 and _is_int(entry[0])):
            return None
        ms = entry[1]
        if isinstance(ms, bool) or not isinstance(ms, int | float) or not 0 <= ms <= MAX_WAIT_MS:
            return None
        parsed[entry[0]] = float(ms)
    return FrameReport(mid, parsed) if parsed else None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


class FrameClock:
    """A grid of flush times, ``anchor + k * period`` (monotonic seconds), moved by the page's reports.

    Shared by a chat's turns (the page's frames do not change between answers); used on the private loop only.
    """

    def __init__(self, period: float = 1 / 60) -> None:
        self.period = period
        self.anchor = 0.0
        #: bumped at each move; a flush remembers the version it was made under
        self.version = 0

    def next_tick(self, not_before: float) -> float:
        """The first grid time at or after `not_before`."""
        return self.anchor + math.ceil((not_before - self.anchor) / self.period - 1e-9) * self.period

    def move(self, waits: list[float]) -> bool:
        """Shift the grid by the median wait (seconds) over the target; whether it moved."""
        if len(waits) < MIN_JUDGED:
            return False
        excess = statistics.median(waits) - TARGET_WAIT
        # flushing `excess` later makes the next ones arrive that much closer to the page's frame
        self.anchor = (self.anchor + excess) % self.period
        self.version += 1
        return True
