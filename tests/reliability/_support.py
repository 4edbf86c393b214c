"""Helpers shared by the reliability tests: leak accounting, message checks, the results RELIABILITY.md reads.

A test that wants to prove "nothing was left behind" takes a `LeakGuard` snapshot once the consumer is
warmed up (the private loop thread, a pooled connection and the simulator exist), runs the fault, then
calls `assert_clean()`: open file descriptors and threads must come back to the snapshot, the only thread
allowed to appear being the private loop (`ernie-stream`, started once per process), and no task may be
left on that loop.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from ernie_widget.client.background import THREAD_NAME, background_loop
from ernie_widget.testing import ErnieSimulator

RESULTS = Path(__file__).parent / ".results"

_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]{3,}")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def loop_tasks() -> int:
    """Tasks still scheduled on the private loop (the probe itself not counted)."""

    async def count() -> int:
        return len(asyncio.all_tasks()) - 1

    return asyncio.run_coroutine_threadsafe(count(), background_loop()).result(5)


def is_bilingual(message: str) -> bool:
    """The error convention: one line "中文 / English" (errors.py)."""
    return bool(_CJK.search(message)) and bool(_LATIN.search(message)) and " / " in message \
        and "\n" not in message.strip()


class LeakGuard:
    """A snapshot of fds and threads; `assert_clean()` waits (briefly) for them to come back."""

    def __init__(self, check_loop: bool = True) -> None:
        self.fds = open_fds()
        self.threads = {t.ident: t.name for t in threading.enumerate()}
        self.check_loop = check_loop

    def _extra_threads(self) -> list[str]:
        return sorted(t.name for t in threading.enumerate()
                      if t.ident not in self.threads and t.name != THREAD_NAME)

    def problems(self) -> list[str]:
        out = []
        fds = open_fds()
        if fds > self.fds:
            out.append(f"{fds - self.fds} more open file descriptors ({self.fds} → {fds})")
        extra = self._extra_threads()
        if extra:
            out.append(f"new threads: {extra}")
        if self.check_loop:
            tasks = loop_tasks()
            if tasks:
                out.append(f"{tasks} task(s) still on the private loop")
        return out

    def assert_clean(self, sim: ErnieSimulator | None = None, timeout: float = 3.0) -> None:
        """Every response finished (so the simulator closed its side), then no fd/thread/task left over."""
        if sim is not None:
            assert sim.wait_for(lambda: all(r.finished for r in sim.all_requests), timeout=timeout), \
                "the simulator still has a response in flight"
        gc.collect()  # once: a dropped stream is closed by its finalizer (a full collection costs ~0.3 s here)
        deadline = time.monotonic() + timeout
        while True:
            problems = self.problems()
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert not problems, "; ".join(problems)


def save_result(name: str, data: Any) -> Path:
    """Write `.results/<name>.json` (git-ignored) for scripts/reliability_report.py."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return path


def busiest_window(times: list[float], window: float) -> int:
    """The most requests that started within any `window` seconds of each other."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)
