"""Gateway overhead: TTFT it adds over talking to the service directly, and chunks/s through it vs direct.

    python benchmarks/gateway.py              # 300 TTFT samples, 20 streams of 2,000 chunks, 1 and 8 at once
    python benchmarks/gateway.py --smoke      # a few samples: a quick check that it runs (never LiteLLM)
    python benchmarks/gateway.py --litellm    # also LiteLLM's proxy as a peer, from its own venv

Every server runs in its own process: the simulator (two of them: a one-chunk answer for TTFT, a long
answer for throughput), the gateway (`--no-auth` on 127.0.0.1, SSE), and optionally the LiteLLM proxy.
The client is our `AsyncErnie(provider="openai")` for every target, so only the hop in between differs.

Goals: added TTFT p50 < 5 ms; chunks/s through the gateway ≥ 0.8 × direct; both better than LiteLLM's.
At 200 concurrent streams (``--concurrent``): requests/s through the gateway ≥ 0.5 × direct and the p95 time to
first token it adds ≤ 100 ms. Memory per idle WebSocket connection (``--idle``, authenticated and waiting) ≤ 2 ×
that of a bare Starlette WebSocket endpoint on uvicorn, the named peer, measured in the same run.
The gateway reads upstream over aiohttp (``--upstream-transport auto``) and writes the events that are
already waiting in one piece, so a client can read it faster than it reads the simulator's one-event
frames: a ratio above 1× is real, not an error.

The LiteLLM peer is optional: it is used only if a pinned ``litellm[proxy]`` (``LITELLM_VERSION``; the
1.107.x releases are never used) installs into ``/tmp/litellm-venv``, outside the project; otherwise the
benchmark prints that the peer was skipped and why. The machine has 2 cores, so with three processes
busy the absolute numbers move with the load; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LITELLM_VERSION = "1.106.12"  # the last release before the compromised 1.107.x line
LITELLM_VENV = Path("/tmp/litellm-venv")
LITELLM_KEY = "sk-bench-" + "0" * 32  # the proxy refuses to start without a master key


def start_simulator(*args: str) -> tuple[subprocess.Popen[str], str]:
    from ernie_widget.testing import simulator_process

    return simulator_process(*args, cwd=ROOT)

def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def ttft_samples(base_url: str, n: int, api_key: str | None = None, model: str | None = None) -> list[float]:
    from ernie_widget.client import AsyncErnie

    async with AsyncErnie("openai", base_url=base_url, api_key=api_key, model=model, max_retries=0) as client:
        out: list[float] = []
        for i in range(n + 5):  # 5 warm-up requests (connection pool, first-request costs)
            t0 = time.perf_counter()
            first = None
            async with client.stream(f"q{i}") as s:
                async for ev in s:
                    if first is None and ev.type == "text":
                        first = time.perf_counter() - t0
            if i >= 5 and first is not None:
                out.append(first)
        return out


async def stream_rate(base_url: str, streams: int, concurrency: int, api_key: str | None = None,
                      model: str | None = None) -> tuple[float, int]:
    """Aggregate chunks/s over ``streams`` long answers, ``concurrency`` at a time; and chunks per answer."""
    from ernie_widget.client import AsyncErnie

    async with AsyncErnie("openai", base_url=base_url, api_key=api_key, model=model, max_retries=0,
                          max_concurrency=max(8, concurrency)) as client:
        async def one() -> int:
            n = 0
            async with client.stream("long") as s:
                async for ev in s:
                    n += ev.type == "text"
            return n

        await one()  # warm up
        sem = asyncio.Semaphore(concurrency)

        async def limited() -> int:
            async with sem:
                return await one()

        t0 = time.perf_counter()
        counts = await asyncio.gather(*(limited() for _ in range(streams)))
        elapsed = time.perf_counter() - t0
        return sum(counts) / elapsed, counts[0]


async def concurrent_round(base_url: str, n: int) -> tuple[float, list[float]]:
    """``n`` streams started at once: requests/s for the round and each stream's time to first token."""
    from ernie_widget.client import AsyncErnie

    async with AsyncErnie("openai", base_url=base_url, max_retries=0, max_concurrency=n) as client:
        async def one(i: int) -> float:
            t0 = time.perf_counter()
            first = float("nan")
            async with client.stream(f"c{i}") as s:
                async for ev in s:
                    if ev.type == "text" and first != first:
                        first = time.perf_counter() - t0
            return first

        await asyncio.gather(*(one(i) for i in range(min(n, 16))))  # warm the pool
        t0 = time.perf_counter()
        ttfts = await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t0), list(ttfts)


def concurrent_streams(base_url: str, n: int, rounds: int) -> dict[str, float]:
    rates, ttfts = [], []
    for _ in range(rounds):
        rate, samples = asyncio.run(concurrent_round(base_url, n))
        rates.append(rate)
        ttfts += samples
    return {"rps": statistics.median(rates), "p50": statistics.median(ttfts) * 1000, "p95": pct(ttfts, 0.95) * 1000}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def hold_idle_websockets(url: str, n: int, pid: int) -> float:
    """KiB of the server's RSS per WebSocket connection that authenticated and then waits."""
    import websockets

    before = rss_kib(pid)
    sockets = []
    try:
        for _ in range(n):
            ws = await websockets.connect(url, max_size=1 << 20, ping_interval=None)
            await ws.send('{"type": "auth", "token": ""}')
            await ws.recv()  # "ready"
            sockets.append(ws)
        await asyncio.sleep(0.5)
        return (rss_kib(pid) - before) / n
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


BARE_WS_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

async def ws(socket):
    await socket.accept()
    await socket.receive_text()
    await socket.send_text('{"type": "ready"}')
    while (await socket.receive())["type"] != "websocket.disconnect":
        pass

uvicorn.run(Starlette(routes=[WebSocketRoute("/v1/ws", ws)]), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", ws_max_size=65536)
"""


def idle_memory(gateway: Any, n: int) -> tuple[float, float]:
    """(gateway, bare Starlette) KiB per idle WebSocket connection."""
    from ernie_widget.gateway.embedded import _wait_port, free_port

    port = free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE_WS_APP, str(port)], cwd=ROOT)
    try:
        _wait_port("127.0.0.1", port, 30, bare)
        ours = asyncio.run(hold_idle_websockets(gateway.url.replace("http", "ws") + "/v1/ws", n, gateway.proc.pid))
        peer = asyncio.run(hold_idle_websockets(f"ws://127.0.0.1:{port}/v1/ws", n, bare.pid))
        return ours, peer
    finally:
        bare.terminate()
        bare.wait(timeout=10)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (Linux /proc), to report cost independently of machine load."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(name: str, ttft_url: str, long_url: str, args: argparse.Namespace, pids: tuple[list[int], list[int]]
            = ([], []), **kw: Any) -> dict[str, Any]:
    """TTFT samples and stream rates for one target; ``pids``: the target's processes (short, long) for CPU cost."""
    c0 = cpu_seconds(pids[0])
    samples = asyncio.run(ttft_samples(ttft_url, args.samples, **kw))
    cpu_req = (cpu_seconds(pids[0]) - c0) / (args.samples + 5)
    c0 = cpu_seconds(pids[1])
    rates = {c: asyncio.run(stream_rate(long_url, args.streams, c, **kw)) for c in (1, 8)}
    cpu_chunk = (cpu_seconds(pids[1]) - c0) / (2 * (args.streams + 1) * args.chunks)
    return {"name": name, "p50": statistics.median(samples) * 1000, "p95": pct(samples, 0.95) * 1000,
            "rate1": rates[1][0], "rate8": rates[8][0], "chunks": rates[1][1],
            "cpu_req_ms": cpu_req * 1000 if pids[0] else None, "cpu_chunk_us": cpu_chunk * 1e6 if pids[1] else None}


def ensure_litellm() -> tuple[Path | None, str]:
    """The litellm executable in its own venv (installed if missing), or None and why not."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe, "installed"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True, capture_output=True,
                       timeout=120)
        r = subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
                           capture_output=True, text=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not create {LITELLM_VENV}: {exc}"
    if r.returncode != 0 or not exe.exists():
        return None, f"pip install litellm[proxy]=={LITELLM_VERSION} failed: {(r.stderr or r.stdout).strip()[-300:]}"
    return exe, "installed now"


def start_litellm(exe: Path, ttft_sim: str, long_sim: str) -> tuple[subprocess.Popen[bytes] | None, str, str]:
    from ernie_widget.gateway.embedded import _wait_port, free_port

    port = free_port()
    cfg = Path(tempfile.mkdtemp()) / "litellm.yaml"
    cfg.write_text(
        "model_list:\n"
        f"  - model_name: short\n    litellm_params: {{model: openai/default, api_base: '{ttft_sim}/v1', api_key: x}}\n"
        f"  - model_name: long\n    litellm_params: {{model: openai/default, api_base: '{long_sim}/v1', api_key: x}}\n"
        "litellm_settings:\n  telemetry: false\n")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "LITELLM_MASTER_KEY": LITELLM_KEY}
    log = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this function, with the proxy
    proc = subprocess.Popen([str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_port("127.0.0.1", port, 180, proc)
    except Exception as exc:
        proc.kill()
        log.seek(0)
        return None, "", f"the proxy did not start ({exc}): {log.read().decode(errors='replace')[-300:]}"
    return proc, f"http://127.0.0.1:{port}/v1", ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=300, help="TTFT samples per target")
    p.add_argument("--streams", type=int, default=20, help="long answers per throughput run")
    p.add_argument("--chunks", type=int, default=2000, help="chunks per long answer")
    p.add_argument("--smoke", action="store_true", help="tiny run for CI (no LiteLLM)")
    p.add_argument("--litellm", action="store_true", help="add LiteLLM's proxy as a peer")
    p.add_argument("--concurrent", type=int, default=200, help="streams at once for the concurrency run (200)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of the concurrency run")
    p.add_argument("--idle", type=int, default=1000, help="idle WebSocket connections for the memory run")
    args = p.parse_args(argv)
    if args.smoke:
        args.samples, args.streams, args.chunks, args.litellm = 20, 4, 200, False
        args.concurrent, args.rounds, args.idle = 40, 1, 50

    from ernie_widget.gateway.embedded import GatewayProcess

    procs: list[Any] = []
    try:
        sim_short, short_url = start_simulator("--text", "ok", "--chunk-size", "8")
        # every chunk differs from the one before it (LiteLLM rejects a stream that repeats one chunk)
        long_text = "".join(f"文{i % 1000:03d}" for i in range(args.chunks))
        sim_long, long_url = start_simulator("--text", long_text, "--chunk-size", "4")
        procs += [sim_short, sim_long]
        # --max-concurrency above the concurrency run's streams: the run measures the gateway, not a queue
        gw_short = GatewayProcess(["--no-auth", "--provider", "openai", "--base-url", short_url + "/v1",
                                   "--log-level", "warning", "--max-concurrency", str(max(64, args.concurrent))],
                                  env={"ERNIE_QUIET": "1"}).launch()
        gw_long = GatewayProcess(["--no-auth", "--provider", "openai", "--base-url", long_url + "/v1",
                                  "--log-level", "warning"], env={"ERNIE_QUIET": "1"}).launch()
        procs += [gw_short, gw_long]
        gw_short.wait_ready()
        gw_long.wait_ready()

        print(f"TTFT: {args.samples} sequential one-chunk answers; throughput: {args.streams} answers of "
              f"{args.chunks} chunks, 1 and 8 at a time", flush=True)
        assert gw_short.proc is not None and gw_long.proc is not None
        results = [measure("direct", short_url + "/v1", long_url + "/v1", args),
                   measure("gateway", gw_short.url + "/v1", gw_long.url + "/v1", args,
                           ([gw_short.proc.pid], [gw_long.proc.pid]))]
        peer_note = "LiteLLM peer: skipped (--smoke)" if args.smoke else "LiteLLM peer: skipped (pass --litellm)"
        if args.litellm:
            exe, installed = ensure_litellm()
            if exe is None:
                peer_note = f"LiteLLM peer: skipped — {installed}"
            else:
                proc, url, why = start_litellm(exe, short_url, long_url)
                if proc is None:
                    peer_note = f"LiteLLM peer: skipped — {why}"
                else:
                    procs.append(proc)
                    try:
                        short = measure("litellm", url, url, args, ([proc.pid], []), api_key=LITELLM_KEY,
                                        model="short")
                        # the long answers go through the same proxy, to the long simulator
                        c0 = cpu_seconds([proc.pid])
                        rates = {c: asyncio.run(stream_rate(url, args.streams, c, api_key=LITELLM_KEY,
                                                            model="long")) for c in (1, 8)}
                        cpu_chunk = (cpu_seconds([proc.pid]) - c0) / (2 * (args.streams + 1) * args.chunks)
                        short.update(rate1=rates[1][0], rate8=rates[8][0], chunks=rates[1][1],
                                     cpu_chunk_us=cpu_chunk * 1e6)
                        results.append(short)
                        peer_note = f"LiteLLM peer: litellm[proxy]=={LITELLM_VERSION} ({installed})"
                    except Exception as exc:
                        peer_note = f"LiteLLM peer: skipped — it failed during the run: {type(exc).__name__}: {exc}"

        direct = results[0]
        print(f"\n{'target':<10} {'TTFT p50':>9} {'p95':>8} {'added p50':>10} {'chunks/s ×1':>12} {'×8':>10} "
              f"{'vs direct':>10} {'proxy CPU/req':>14} {'CPU/chunk':>10}")
        for r in results:
            added = r["p50"] - direct["p50"]
            cpu_req = "-" if r.get("cpu_req_ms") is None else f"{r['cpu_req_ms']:.2f}ms"
            cpu_chunk = "-" if r.get("cpu_chunk_us") is None else f"{r['cpu_chunk_us']:.0f}µs"
            print(f"{r['name']:<10} {r['p50']:>7.2f}ms {r['p95']:>6.2f}ms {added:>8.2f}ms {r['rate1']:>12.0f} "
                  f"{r['rate8']:>10.0f} {r['rate1'] / direct['rate1']:>9.2f}× {cpu_req:>14} {cpu_chunk:>10}")
            if r["chunks"] != args.chunks:
                print(f"  ! {r['name']} delivered {r['chunks']} chunks per answer, expected {args.chunks}")
        gw = results[1]
        added = gw["p50"] - direct["p50"]
        ratio = gw["rate1"] / direct["rate1"]
        print(f"\ngoal: added TTFT p50 < 5 ms: {added:.2f} ms — {'met' if added < 5 else 'NOT met'}")
        print(f"goal: gateway chunks/s ≥ 0.8 × direct: {ratio:.2f}× (1 stream), "
              f"{gw['rate8'] / direct['rate8']:.2f}× (8 streams) — {'met' if ratio >= 0.8 else 'NOT met'}")
        if gw.get("cpu_chunk_us"):
            print(f"gateway CPU: {gw['cpu_req_ms']:.2f} ms per request, {gw['cpu_chunk_us']:.0f} µs per chunk "
                  f"(≈ {1e6 / gw['cpu_chunk_us']:.0f} chunks/s per core, whatever else the machine is doing)")
        peer = next((r for r in results if r["name"] == "litellm"), None)
        if peer is not None:
            peer_added = peer["p50"] - direct["p50"]
            beats = added < peer_added and gw["rate1"] > peer["rate1"] and gw["rate8"] > peer["rate8"]
            print(f"goal: lower added TTFT and more chunks/s than LiteLLM: {added:.2f} vs {peer_added:.2f} ms, "
                  f"{gw['rate1'] / peer['rate1']:.1f}× its chunks/s (1 stream), "
                  f"{gw['rate8'] / peer['rate8']:.1f}× (8 streams) — {'met' if beats else 'NOT met'}")
        print(peer_note)

        print(f"\n{args.concurrent} streams at once, {args.rounds} round(s) (one-chunk answers):")
        at_once = {"direct": concurrent_streams(short_url + "/v1", args.concurrent, args.rounds),
                   "gateway": concurrent_streams(gw_short.url + "/v1", args.concurrent, args.rounds)}
        for name, r in at_once.items():
            print(f"{name:<10} {r['rps']:>8.0f} requests/s   TTFT p50 {r['p50']:>7.1f} ms   p95 {r['p95']:>7.1f} ms")
        rps_ratio = at_once["gateway"]["rps"] / at_once["direct"]["rps"]
        added95 = at_once["gateway"]["p95"] - at_once["direct"]["p95"]
        print(f"goal: requests/s ≥ 0.5 × direct at {args.concurrent} streams: {rps_ratio:.2f}× — "
              f"{'met' if rps_ratio >= 0.5 else 'NOT met'}")
        print(f"goal: added p95 TTFT ≤ 100 ms at {args.concurrent} streams: {added95:.1f} ms — "
              f"{'met' if added95 <= 100 else 'NOT met'}")

        ours, bare = idle_memory(gw_short, args.idle)
        print(f"\nmemory per idle WebSocket ({args.idle} authenticated, waiting): gateway {ours:.1f} KiB, "
              f"bare Starlette on uvicorn {bare:.1f} KiB ({ours / max(bare, 0.1):.1f}×)")
        print(f"goal: ≤ 2 × the bare endpoint: {'met' if ours <= 2 * max(bare, 0.1) else 'NOT met'}")
        return 0
    finally:
        for proc in reversed(procs):
            if hasattr(proc, "stop"):
                proc.stop()
            else:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    raise SystemExit(main())
