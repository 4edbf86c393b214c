"""Coalescing streamed text into comm messages: the first piece at once, then at most one message per frame.

A piece that arrives when nothing was sent for `interval` seconds goes out immediately (no waiting for company);
pieces arriving faster are coalesced and sent by a timer on a grid of one display frame (1/60 s, ≤ 60
messages/s) whose phase the page tunes so that they arrive just before it paints (frame_clock.py). The 40 ms
window used before was most of the kernel-to-DOM latency (p95 54 ms at 200 chunks/s).

jupyter_server drops IOPub messages above 1000/s (comm messages count), so per-token sends lose text
at high token rates (docs/notebook-facts.md §6). Time-based flushing also covers slow models: a timer
makes sure a lone delta never waits for the next one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .frame_clock import FrameClock, FrameReport

__all__ = ["DeltaBatcher"]


class DeltaBatcher:
    """Collects text/reasoning for one answer (`mid`) and sends `{"type": "delta", mid, seq, …}` messages.

    Runs on one event loop; not thread-safe by design (one producer per stream keeps `seq` ordered).
    """

    def __init__(self, send: Callable[[dict[str, Any]], None], mid: int, interval: float = 1 / 60,
                 max_pending_chars: int = 16384, clock: FrameClock | None = None) -> None:
        self._send = send
        self.mid = mid
        #: the flush grid (shared by a chat's turns); its period is the batching interval
        self.clock = clock if clock is not None else FrameClock(interval)
        self.max_pending_chars = max_pending_chars
        self.seq = 0
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self._pending_text: list[str] = []
        self._pending_reasoning: list[str] = []
        self._pending_chars = 0
        self._last_flush = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.messages_sent = 0
        #: seq of each recent grid flush → the clock version it was made under (the ones a report may judge)
        self._on_grid: dict[int, int] = {}

    @property
    def interval(self) -> float:
        """Seconds between flushes: the grid's period (with `clock`, the `interval` argument is not used)."""
        return self.clock.period

    def add(self, text: str = "", reasoning: str = "") -> None:
        if text:
            self.text.append(text)
            self._pending_text.append(text)
        if reasoning:
            self.reasoning.append(reasoning)
            self._pending_reasoning.append(reasoning)
        self._pending_chars += len(text) + len(reasoning)
        now = time.monotonic()
        if now - self._last_flush >= self.interval or self._pending_chars >= self.max_pending_chars:
            self.flush()
        elif self._timer is None:
            # the next grid time, never sooner than half a frame after the last message
            at = self.clock.next_tick(max(now, self._last_flush + self.interval / 2))
            self._timer = asyncio.get_running_loop().call_later(at - now, self._on_timer, self.clock.version)

    def _on_timer(self, version: int) -> None:
        """A flush on the grid of clock `version` (the one it was scheduled on, even if the grid moved since)."""
        self._timer = None
        seq = self.seq
        self.flush()
        if self.seq > seq:
            self._on_grid[seq] = version
            if len(self._on_grid) > 128:
                del self._on_grid[next(iter(self._on_grid))]

    def on_frame_report(self, report: FrameReport) -> bool:
        """The page's waits for this answer's deltas: move the grid by those of current grid flushes."""
        if report.mid != self.mid:
            return False
        version = self.clock.version
        waits = [ms / 1000 for seq, ms in report.waits_ms.items() if self._on_grid.get(seq) == version]
        return self.clock.move(waits)

    def flush(self) -> None:
        """Send what is pending now (always called at the end, on error and on stop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last_flush = time.monotonic()
        if not self._pending_text and not self._pending_reasoning:
            return
        msg: dict[str, Any] = {"type": "delta", "mid": self.mid, "seq": self.seq}  # never a key named "id"
        if self._pending_text:
            msg["text"] = "".join(self._pending_text)
            self._pending_text.clear()
        if self._pending_reasoning:
            msg["reasoning"] = "".join(self._pending_reasoning)
            self._pending_reasoning.clear()
        self._pending_chars = 0
        self.seq += 1
        self.messages_sent += 1
        self._send(msg)

    def snapshot(self) -> dict[str, Any]:
        """The in-flight answer so far, for a view that (re)connects: everything sent, with the next seq."""
        self.flush()
        return {"type": "resync", "mid": self.mid, "seq": self.seq, "text": "".join(self.text),
                "reasoning": "".join(self.reasoning)}

    def close(self) -> None:
        self.flush()
