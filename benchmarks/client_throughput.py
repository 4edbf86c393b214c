"""Streaming throughput of the client vs raw httpx2 + SSE + json, and vs the openai SDK; import time.

    python benchmarks/client_throughput.py               # one 20,000-chunk answer, best of 5 per client
    python benchmarks/client_throughput.py --chunks 50000
    python benchmarks/client_throughput.py --smoke       # a tiny answer: a quick check that it runs

The simulator runs in its own process (so it does not share our GIL) and streams the same answer, one
character per chunk with no delay, on its OpenAI-compatible surface (`/v1/chat/completions`, FastDeploy's
wire shape). Every client must receive the whole answer; chunks/s counts text chunks from sending the
request to the last chunk (building and closing the client is not counted). Runs are interleaved,
best of N; CPU µs per chunk (this process, all threads) is printed too, as it is steadier on a busy machine.

Goals: `AsyncErnie.stream` ≥ 0.8× raw httpx2 + `EventSource` + `json.loads`; ≥ 3× the openai SDK;
`import ernie_widget` ≤ 150 ms in a fresh interpreter (best of 5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "ernie-4.5-21b-a3b"
PROMPT = "写一篇长文"
GOAL_RAW, GOAL_OPENAI, GOAL_IMPORT_MS = 0.8, 3.0, 150.0


def answer_text(chunks: int) -> str:
    base = "文心一言ERNIE流式输出测试，" * (chunks // 14 + 1)
    return base[:chunks]


def start_simulator(text: str) -> tuple[subprocess.Popen[str], str]:
    from ernie_widget.testing import simulator_process

    return simulator_process("--text", text, "--chunk-size", "1", "--delay", "0", cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})

class Meter:
    """Wall and CPU time of the stream alone: client construction and teardown are not counted."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


# -- the contenders: each returns (text chunks received, the text) -----------------------------------


async def ours_async(base: str, meter: Meter) -> tuple[int, str]:
    from ernie_widget.client import AsyncErnie

    async with AsyncErnie("openai", base_url=base, model=MODEL) as client:
        n, parts = 0, []
        meter.start()
        async with client.stream(PROMPT) as stream:
            async for ev in stream:
                if ev.type == "text":
                    n += 1
                    parts.append(ev.text)
        meter.stop()
        return n, "".join(parts)


def ours_sync(base: str, meter: Meter) -> tuple[int, str]:
    from ernie_widget.client import Ernie

    with Ernie("openai", base_url=base, model=MODEL) as client:
        n, parts = 0, []
        meter.start()
        with client.stream(PROMPT) as stream:
            for ev in stream:
                if ev.type == "text":
                    n += 1
                    parts.append(ev.text)
        meter.stop()
        return n, "".join(parts)


async def raw_httpx2(base: str, meter: Meter) -> tuple[int, str]:
    import httpx2

    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True,
            "stream_options": {"include_usage": True}}
    n, parts = 0, []
    async with httpx2.AsyncClient(timeout=60) as http:
        meter.start()
        async with http.stream("POST", f"{base}/chat/completions", json=body) as response:
            async for sse in httpx2.EventSource(response):
                if sse.data == "[DONE]":
                    break
                obj = json.loads(sse.data)
                choices = obj.get("choices")
                if choices:
                    content = choices[0]["delta"].get("content")
                    if content:
                        n += 1
                        parts.append(content)
        meter.stop()
    return n, "".join(parts)


async def openai_sdk(base: str, meter: Meter) -> tuple[int, str]:
    import openai

    client = openai.AsyncOpenAI(base_url=base, api_key="not-needed", max_retries=0)
    n, parts = 0, []
    try:
        meter.start()
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices:
                content = chunk.choices[0].delta.content
                if content:
                    n += 1
                    parts.append(content)
        meter.stop()
    finally:
        await client.close()
    return n, "".join(parts)


def timed(fn: Callable[[str, Meter], Awaitable[tuple[int, str]] | tuple[int, str]], base: str,
          expected: str) -> tuple[float, float]:
    """(chunks/s of wall time, CPU µs per chunk of this process — all its threads, not the simulator's)."""
    meter = Meter()
    result = fn(base, meter)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    n, text = result  # type: ignore[misc]
    if text != expected or n != len(expected):
        raise SystemExit(f"{fn.__name__}: wrong answer ({n} chunks, {len(text)} chars; expected {len(expected)})")
    return n / meter.wall, meter.cpu / n * 1e6


def import_time_ms(runs: int = 5) -> float:
    code = "import time; t = time.perf_counter(); import ernie_widget; print(time.perf_counter() - t)"
    best = float("inf")
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
        best = min(best, float(out.stdout.strip()) * 1000)
    return best


CONTENDERS: list[tuple[str, Callable[..., object]]] = [
    ("AsyncErnie.stream", ours_async),
    ("Ernie.stream (sync)", ours_sync),
    ("raw httpx2 + EventSource + json", raw_httpx2),
    ("openai SDK (AsyncOpenAI)", openai_sdk),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=20_000, help="text chunks in the answer (default 20,000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per client; the best counts (default 5)")
    parser.add_argument("--smoke", action="store_true", help="a 300-chunk answer, one run: checks that it runs")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    chunks, runs = (300, 1) if args.smoke else (args.chunks, args.runs)
    os.environ["ERNIE_QUIET"] = "1"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(var, None)  # 127.0.0.1 only; trust_env must not route the benchmark through a proxy

    expected = answer_text(chunks)
    proc, url = start_simulator(expected)
    base = url + "/v1"
    try:
        for _, fn in CONTENDERS:  # warm up: imports, the private loop, the simulator's code paths
            timed(fn, base, expected)  # type: ignore[arg-type]
        best = {name: 0.0 for name, _ in CONTENDERS}
        cpu = {name: float("inf") for name, _ in CONTENDERS}
        for _ in range(runs):
            for name, fn in CONTENDERS:
                rate, us = timed(fn, base, expected)  # type: ignore[arg-type]
                best[name], cpu[name] = max(best[name], rate), min(cpu[name], us)
    finally:
        proc.terminate()
        proc.wait(5)

    print(f"one answer of {chunks:,} chunks from the simulator (separate process), best of {runs}, "
          f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    raw_name, sdk_name = "raw httpx2 + EventSource + json", "openai SDK (AsyncOpenAI)"
    raw, sdk = best[raw_name], best[sdk_name]
    print(f"{'client':<34} {'chunks/s':>10} {'vs raw':>8} {'vs openai':>10} {'CPU µs/chunk':>13}")
    for name, _ in CONTENDERS:
        rate = best[name]
        print(f"{name:<34} {rate:>10,.0f} {rate / raw:>7.2f}× {rate / sdk:>9.2f}× {cpu[name]:>13.1f}")
    ours = best["AsyncErnie.stream"]
    print(f"CPU per chunk, AsyncErnie vs raw: {cpu[raw_name] / cpu['AsyncErnie.stream']:.2f}× as fast "
          "(steadier than wall time on a busy machine)")
    imp = import_time_ms()
    print(f"import ernie_widget: {imp:.1f} ms (best of 5, fresh interpreter)")
    missed = []
    if ours / raw < GOAL_RAW:
        missed.append(f"AsyncErnie is {ours / raw:.2f}× raw (goal ≥ {GOAL_RAW}×)")
    if ours / sdk < GOAL_OPENAI:
        missed.append(f"AsyncErnie is {ours / sdk:.2f}× the openai SDK (goal ≥ {GOAL_OPENAI}×)")
    if imp > GOAL_IMPORT_MS:
        missed.append(f"import takes {imp:.0f} ms (goal ≤ {GOAL_IMPORT_MS:g} ms)")
    print("goals: " + ("all met" if not missed else "; ".join(missed)))
    return 1 if (missed and args.strict and not args.smoke) else 0


if __name__ == "__main__":
    sys.exit(main())
