"""Kernel-to-DOM latency of the chat widget at 50 and 200 chunks/s, in a real JupyterLab and Chromium.

    python benchmarks/kernel_to_dom.py            # 10 s at each rate (500 and 2,000 chunks)
    python benchmarks/kernel_to_dom.py --smoke    # 2 s at each rate: a quick check that it runs

The protocol simulator streams an answer whose every chunk is one numbered marker (`mk00042` plus two
characters of spacing; a paragraph break every 10 chunks) at each rate, paced against a schedule. The
whole path is real: the kernel's HTTP client reads the SSE stream, `ErnieChat` batches deltas onto the comm,
jupyter_server relays them over the websocket, and the widget renders Markdown in the page. The simulator runs
in this process; the only instrumentation is a wrapper around its `ResponseWriter.event` that paces the events
and notes `time.time()` once each has been written to the socket (the send time). In the page, a
MutationObserver on the chat notes the wall-clock time (`performance.timeOrigin + performance.now()`) at which
each marker first appears in the DOM. Same machine, same clock: latency = DOM time − send time.

Reported per rate: the achieved chunk rate, markers seen, latency p50 / p95 / max, and DOM updates per second (distinct
times at which markers appeared: at most the comm messages that carried them, ≤ 60/s by DeltaBatcher's frame).
Goal: p95 ≤ 30 ms at both rates (issue 19; the 40 ms coalescing window used before gave p95 54 ms at 200/s).
On a quiet 2-core machine: 19.5–21.3 ms at 50/s and 25.5–26.5 ms at 200/s, with the kernel websocket's
TCP_NODELAY (ernie_widget/kernel_socket.py) and the flush grid phased to the page's frames (frame_clock.py);
docs/architecture.md, "Streaming latency", has the legs. The run needs the server extensions enabled (the
installed jupyter_server_config.d file, as `pip install` and scripts/bootstrap put it).
Exit status 0 (1 with --strict when the goal is missed; 1 when markers are missing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_P95_MS = 30.0
RATES = (50, 200)  # chunks per second
PAUSE = 1e-6  # the simulator's own pause between events (any > 0: write each event immediately)
MARKER = re.compile(r"mk(\d{5})")
WARMUP = re.compile(r"wk(\d{5})")
CHAT = '[data-testid="ernie-message"][data-role="assistant"]'

# Installed once the widget is on the page. Markers only ever grow at the end of the text, so each callback
# scans from just before the last one found.
WATCH = """(chat) => {
  const seen = new Map();
  let from = 0;
  const root = document.querySelector(chat);
  const answersOf = () => root.querySelectorAll('[data-testid="ernie-message"][data-role="assistant"] .ernie-answer');
  const before = answersOf().length;  // only the answer that starts after this
  new MutationObserver(() => {
    const now = performance.timeOrigin + performance.now();
    const answers = answersOf();
    const text = answers.length > before ? answers[answers.length - 1].textContent : "";
    const re = /mk(\\d{5})/g;
    re.lastIndex = Math.max(0, from - 9);
    for (let m; (m = re.exec(text)); ) {
      const n = Number(m[1]);
      if (!seen.has(n)) seen.set(n, now);
      from = re.lastIndex;
    }
  }).observe(root, { childList: true, subtree: true, characterData: true });
  window.ernieMarkers = seen;
}"""


def marker_text(chunks: int, prefix: str = "mk") -> str:
    """`chunks` markers of 9 characters each (so chunk_size=9 puts exactly one in every SSE event)."""
    return "".join(f"{prefix}{i:05d}" + ("\n\n" if i % 10 == 9 else "  ") for i in range(chunks))


@contextmanager
def paced_send_times(rate: float) -> Iterator[dict[int, float]]:
    """Pace marker events at `rate` per second and note when each has been written to the socket.

    Wraps the simulator's `ResponseWriter.event`. Pacing against a schedule (rather than the simulator's fixed
    sleep between events, which drifts by the write time and by late wake-ups on a busy machine) keeps the
    average rate exact. Keys: marker n → n, warm-up marker n → -1 - n.
    """
    from ernie_widget.testing import _wire

    sent: dict[int, float] = {}
    original = _wire.ResponseWriter.event
    schedule: dict[str, float] = {}

    async def paced(self: Any, payload: str, *, trailing_space: bool = False) -> None:
        found = [(int(m.group(1)), p) for p, rx in (("mk", MARKER), ("wk", WARMUP)) for m in rx.finditer(payload)]
        if found:
            n, prefix = found[0]
            start = schedule.get(prefix) if n else None
            if start is None:
                start = schedule[prefix] = time.monotonic()
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
        await original(self, payload, trailing_space=trailing_space)
        now = time.time()
        for n, prefix in found:
            sent.setdefault(n if prefix == "mk" else -1 - n, now)

    _wire.ResponseWriter.event = paced  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        _wire.ResponseWriter.event = original  # type: ignore[method-assign]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(chunks: int, rate: int) -> tuple[dict[int, float], dict[int, float], float]:
    """Stream `chunks` markers into a chat in JupyterLab.

    Returns send times and DOM times (epoch seconds, by marker) and how far (ms) the page's clock read outside
    a round trip to it (0 when the clocks agree within the round trip).
    """
    from playwright.sync_api import sync_playwright

    from ernie_widget.testing import Answer, ErnieSimulator
    from tests.e2e.conftest import (
        CHROMIUM_ARGS,
        JupyterServer,
        chromium_path,
        open_notebook,
        run_cell,
        server_env,
        wait_idle,
        write_notebook,
    )

    with tempfile.TemporaryDirectory(prefix="ernie-k2d-") as tmp, ErnieSimulator() as sim, \
            paced_send_times(rate) as sent:
        root = Path(tmp)
        write_notebook(root / "latency.ipynb", ["from ernie_widget import ErnieChat\nchat = ErnieChat()\nchat"])
        server = JupyterServer(root, server_env(sim, root))
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1100, "height": 900})
                    open_notebook(page, server, "latency.ipynb", "latency")
                    run_cell(page, 0)
                    box = page.locator('[data-testid="ernie-input"]')
                    box.wait_for(timeout=60_000)
                    wait_idle(page)
                    # Warm-up answer (1 s): first-use costs are not streaming latency.
                    # (delay > 0 makes the simulator write every event at once; the pacing is ours.)
                    sim.push(Answer(text=marker_text(rate, prefix="wk"), chunk_size=9, delay=PAUSE))
                    box.fill("warm up")
                    box.press("Enter")
                    page.locator(CHAT).last.locator(f"text=wk{rate - 1:05d}").wait_for(timeout=30_000)
                    page.locator('[data-testid="ernie-send"]').wait_for(state="visible", timeout=10_000)
                    sent.clear()

                    page.evaluate(WATCH, ".ernie-chat")
                    sim.push(Answer(text=marker_text(chunks), chunk_size=9, delay=PAUSE))
                    box.fill("latency")
                    box.press("Enter")
                    last = f"mk{chunks - 1:05d}"
                    page.wait_for_function(f"() => window.ernieMarkers.has({chunks - 1})",
                                           timeout=chunks / rate * 1000 + 60_000)
                    page.locator('[data-testid="ernie-send"]').wait_for(state="visible", timeout=30_000)
                    assert last in page.locator(CHAT).last.inner_text()
                    shown = page.evaluate("() => [...window.ernieMarkers.entries()]")
                    # the page's clock against ours: its reading must fall inside our round trip
                    t0 = time.time()
                    page_now = page.evaluate("() => performance.timeOrigin + performance.now()") / 1000
                    t1 = time.time()
                    skew = (min(0.0, page_now - t0) or max(0.0, page_now - t1)) * 1000
                finally:
                    browser.close()
        finally:
            server.stop()
    return dict(sent), {int(n): t / 1000 for n, t in shown}, skew


def measure(rate: int, seconds: float, as_json: bool) -> tuple[bool, int]:
    """One run at `rate` chunks/s: prints the figures; returns (goal met, markers missing)."""
    chunks = max(20, round(rate * seconds))
    sent, shown, skew = run(chunks, rate)
    common = sorted(set(sent) & set(shown))
    latencies = [(shown[n] - sent[n]) * 1000 for n in common]
    span = max(sent.values()) - min(sent.values()) if len(sent) > 1 else 0.0
    achieved = (len(sent) - 1) / span if span else 0.0
    missing = chunks - len(common)
    p50, p95 = statistics.median(latencies), _pct(latencies, 0.95)
    updates = len({round(shown[n], 4) for n in common}) / span if span else 0.0
    met = p95 <= GOAL_P95_MS
    print(f"[{rate}/s] streamed {len(sent):,} chunks at {achieved:.0f} chunks/s; markers seen in the DOM: "
          f"{len(common):,}/{chunks:,}; DOM updates {updates:.0f}/s")
    print(f"[{rate}/s] kernel-to-DOM latency: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(latencies):.1f} ms, "
          f"min {min(latencies):.1f} ms (goal p95 ≤ {GOAL_P95_MS:.0f} ms: {'met' if met else 'MISSED'})")
    print(f"[{rate}/s] clock check: page clock vs ours "
          f"{'agree within a round trip' if skew == 0 else f'off by {skew:+.1f} ms'}")
    if as_json:
        print(json.dumps({"rate_target": rate, "chunks": chunks, "rate": round(achieved, 1), "p50_ms": round(p50, 1),
                          "p95_ms": round(p95, 1), "max_ms": round(max(latencies), 1), "missing": missing,
                          "dom_updates_per_s": round(updates, 1), "clock_skew_ms": round(skew, 1)}))
    if missing:
        print(f"[{rate}/s] {missing} markers never appeared", file=sys.stderr)
    return met, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds streamed at each rate (default 10)")
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="chunks/s to measure (default 50,200)")
    parser.add_argument("--smoke", action="store_true", help="2 s per rate: checks that it runs (not judged)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the goal is missed")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line per rate")
    args = parser.parse_args(argv)
    seconds = 2.0 if args.smoke else args.seconds
    results = [measure(int(r), seconds, args.json) for r in args.rates.split(",") if r.strip()]
    if args.smoke:
        print("smoke run: too short to judge the goal (not judged)")
    if any(missing for _, missing in results):
        return 1
    return 1 if (args.strict and not args.smoke and not all(met for met, _ in results)) else 0


if __name__ == "__main__":
    sys.exit(main())
