"""Inline completion: the latency the Jupyter server extension adds to ghost text, and how fast a cancel lands.

    python benchmarks/inline_completion.py              # 100 samples per side, 20 cancels
    python benchmarks/inline_completion.py --smoke      # a few of each: a quick check that it runs
    python benchmarks/inline_completion.py --browser    # also keystroke → first ghost-text character, in
                                                        # JupyterLab and Chromium (the provider, debounce 0)

The protocol simulator answers as Qianfan v2 with a fixed 100 ms time to first token. A real `jupyter server`
(its own process) runs the extension (`ernie_widget.completion`), enabled by the config file the wheel ships.
Both sides are measured in the same run, alternating sample by sample:

* direct — the model's own latency: our `AsyncErnie` streams from the simulator, time to the first text;
* server — what the browser sees: `POST …/ernie-widget/completion`, time to the first NDJSON line whose text is
  not empty (the prompt is built, the answer cleaned, the line flushed), over a plain HTTP/1.1 connection.

The added overhead is each server sample minus the direct sample taken just before it, at p50 and p95 (goal:
p95 ≤ 50 ms). A cancel closes the browser's
connection after its first line while the simulator is still streaming (a long, slow answer); the time from
that close to the simulator seeing the server's upstream connection close is the goal's second figure
(≤ 100 ms). The machine has 2 shared cores, so absolute numbers move with the load; the differences are what
to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.processes import ShippedConfigServer, free_port  # noqa: E402

TTFT = 0.100  # the simulator's fixed time to first token
TOKEN = "bench-token"
KEY = "bce-v3/ALTAK-benchmark000/benchsecret111"
PATH = "/ernie-widget/completion"
ANSWER = "return a + b"
GOAL_P95_MS = 50.0
GOAL_CANCEL_MS = 100.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class CompletionServer(ShippedConfigServer):
    """`jupyter server` with the extension enabled by the shipped config file; ready once its status answers."""

    def ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(f"GET {PATH}/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: token {TOKEN}\r\n"
                      "Connection: close\r\n\r\n".encode())
            return s.recv(64).startswith(b"HTTP/1.1 200")


BODY = json.dumps({"prefix": "def add(a, b):\n    ", "suffix": "\n\nprint(add(1, 2))", "language": "python",
                   "cell_type": "code", "context": ["import math"]}).encode()


async def open_completion(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, float]:
    """Send the completion request the browser would send; returns the connection and when it was sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.perf_counter()
    writer.write(f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: token {TOKEN}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"the server answered {head.decode(errors='replace')!r}")
    return reader, writer, start


async def ndjson_lines(reader: asyncio.StreamReader) -> Any:
    """The NDJSON lines of a chunked response, as they arrive."""
    pending = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            return
        pending += (await reader.readexactly(size + 2))[:-2]
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)


async def server_ttft(port: int) -> float:
    reader, writer, start = await open_completion(port)
    try:
        async for line in ndjson_lines(reader):
            if line.get("text"):
                return time.perf_counter() - start
            if "error" in line:
                raise SystemExit(f"the server answered an error: {line}")
        raise SystemExit("the completion ended without text")
    finally:
        writer.close()


async def direct_ttft(client: Any) -> float:
    start = time.perf_counter()
    async with client.stream("Complete: def add(a, b):", max_tokens=128, temperature=0.2) as stream:
        async for event in stream:
            if event.type == "text" and event.text:
                return time.perf_counter() - start
    raise SystemExit("the direct stream ended without text")


async def cancel_ms(port: int, sim: Any) -> float:
    """Close the browser's connection after its first line; ms until the simulator sees the upstream close."""
    reader, writer, _ = await open_completion(port)
    async for line in ndjson_lines(reader):
        if line.get("text"):
            break
    upstream = sim.chat_requests[-1]
    closed = time.monotonic()  # the simulator's records use the monotonic clock
    writer.close()
    deadline = closed + 5
    while upstream.finished is None and time.monotonic() < deadline:
        await asyncio.sleep(0.0005)
    if upstream.finished is None or not upstream.disconnected:
        raise SystemExit("the upstream request was not closed within 5 s of the cancel")
    return (upstream.finished - closed) * 1000


async def run(port: int, sim: Any, samples: int, cancels: int) -> dict[str, list[float]]:
    from ernie_widget.client import AsyncErnie
    from ernie_widget.testing import Answer

    out: dict[str, list[float]] = {"direct": [], "server": [], "cancel": []}
    async with AsyncErnie("qianfan", api_key=KEY, base_url=sim.base_url("qianfan"),
                          model="ernie-speed-128k") as client:
        sim.set_answer(Answer(text=ANSWER, chunk_size=4))
        for _ in range(2):  # warm both paths: connections, the server's first request
            await direct_ttft(client)
            await server_ttft(port)
        for _ in range(samples):
            out["direct"].append(await direct_ttft(client) * 1000)
            out["server"].append(await server_ttft(port) * 1000)
        sim.latency = 0.0  # the cancel waits for the first line only; what matters is the stream after it
        sim.set_answer(Answer(text="x" * 2000, chunk_size=2, delay=0.05))  # ~50 s of answer: never finishes
        for _ in range(cancels):
            out["cancel"].append(await cancel_ms(port, sim))
    return out


SETTINGS = "@jupyterlab/completer-extension:inline-completer"
GHOST_WATCH = """() => {
  window.__ghostAt = null;
  window.__keyAt = null;
  document.addEventListener("keydown", () => { window.__keyAt ??= performance.now(); }, {capture: true, once: true});
  const seen = () => [...document.querySelectorAll(".jp-GhostText")].some((g) => g.textContent.trim());
  const observer = new MutationObserver(() => {
    if (window.__keyAt !== null && seen()) { window.__ghostAt = performance.now(); observer.disconnect(); }
  });
  observer.observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


def browser_samples(env: dict[str, str], root: Path, samples: int) -> list[float]:
    """Keystroke → first ghost-text character, in ms, measured inside the page (JupyterLab + Chromium)."""
    import urllib.request

    from playwright.sync_api import sync_playwright

    port = free_port()
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "c0", "metadata": {}, "outputs": [],
                     "source": ""}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (root / "bench.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    log = open(root / "lab.log", "wb")  # noqa: SIM115 - lives as long as the server
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                            f"--port={port}", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
                            "--ServerApp.disable_check_xsrf=True", "--LabApp.expose_app_in_browser=True"],
                           env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    out: list[float] = []
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or lab.poll() is not None:
                    raise SystemExit("jupyter lab did not start") from None
                time.sleep(0.2)
        # the provider on, without JupyterLab's debounce: what is measured is the path, not a chosen delay
        raw = json.dumps({"providers": {"ernie-widget": {"enabled": True, "debouncerDelay": 0, "timeout": 20000}}})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/lab/api/settings/{SETTINGS}?token={TOKEN}",
                                         data=json.dumps({"raw": raw}).encode(), method="PUT",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=30).close()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                               "--disable-component-update", "--disable-sync"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/lab/tree/bench.ipynb?reset&token={TOKEN}")
            nbjs = "window.jupyterapp.shell.currentWidget.content"
            page.wait_for_function("() => window.jupyterapp?.shell?.currentWidget?.content?.widgets?.length === 1",
                                   timeout=120_000)
            page.wait_for_timeout(1500)
            for i in range(samples + 2):  # two warm-up keystrokes
                page.evaluate(f"() => {nbjs}.model.cells.get(0).sharedModel.setSource('def add(a, b):\\n    return a')")
                page.keyboard.press("Escape")
                page.locator(".jp-Cell .cm-content").first.click()
                page.keyboard.press("Control+End")
                page.wait_for_timeout(150)
                page.evaluate(GHOST_WATCH)
                page.keyboard.type(" ")
                page.wait_for_function("() => window.__ghostAt !== null", timeout=20_000)
                took = page.evaluate("() => window.__ghostAt - window.__keyAt")
                if i >= 2:
                    out.append(float(took))
            browser.close()
    finally:
        lab.terminate()
        try:
            lab.wait(15)
        except subprocess.TimeoutExpired:
            lab.kill()
        log.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=100, help="time-to-first-text samples per side")
    p.add_argument("--cancels", type=int, default=20, help="cancelled completions")
    p.add_argument("--smoke", action="store_true", help="tiny run for CI")
    p.add_argument("--browser", action="store_true",
                   help="also keystroke → first ghost-text character in JupyterLab and Chromium (not in --smoke)")
    args = p.parse_args(argv)
    if args.smoke:
        args.samples, args.cancels = 8, 3

    from ernie_widget.testing import ErnieSimulator

    root = Path(tempfile.mkdtemp(prefix="inline-bench-"))
    server = None
    with ErnieSimulator(latency=TTFT) as sim:
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("QIANFAN", "AISTUDIO", "ERNIE_"))}
            env.update(sim.env("qianfan", api_key=KEY))
            env.update({"JUPYTER_CONFIG_DIR": str(root / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(root / "rt"),
                        "JUPYTER_DATA_DIR": str(root / "data"), "ERNIE_QUIET": "1",
                        "NO_PROXY": "127.0.0.1,localhost"})
            server = CompletionServer(root, env, TOKEN)
            port = server.port
            print(f"{args.samples} completions per side, alternating, simulator TTFT {TTFT * 1000:.0f} ms; "
                  f"{args.cancels} cancels", flush=True)
            r = asyncio.run(run(port, sim, args.samples, args.cancels))
            if args.browser and not args.smoke:
                sim.latency = TTFT
                sim.set_answer(text=" + b", chunk_size=4)
                r["browser"] = browser_samples(env, root, max(10, args.samples // 2))
        finally:
            if server is not None:
                server.stop()
            shutil.rmtree(root, ignore_errors=True)

    d50, d95 = statistics.median(r["direct"]), pct(r["direct"], 0.95)
    s50, s95 = statistics.median(r["server"]), pct(r["server"], 0.95)
    c50, c95 = statistics.median(r["cancel"]), pct(r["cancel"], 0.95)
    print(f"\n{'path':<8} {'first text p50':>15} {'p95':>9}")
    print(f"{'direct':<8} {d50:>13.1f}ms {d95:>7.1f}ms   (the model's own latency: client → simulator)")
    print(f"{'server':<8} {s50:>13.1f}ms {s95:>7.1f}ms   (browser → Jupyter server extension → simulator)")
    # each server sample against the direct sample taken just before it: the load they shared cancels out
    pairs = [s - d for s, d in zip(r["server"], r["direct"], strict=True)]
    added = pct(pairs, 0.95)
    print(f"added by the server extension (server − direct, sample by sample): p50 {statistics.median(pairs):.1f} ms, "
          f"p95 {added:.1f} ms; server/direct p50 ratio {s50 / d50:.2f}×")
    print(f"cancel → upstream closed: p50 {c50:.1f} ms, p95 {c95:.1f} ms, max {max(r['cancel']):.1f} ms")
    if "browser" in r:
        b50, b95 = statistics.median(r["browser"]), pct(r["browser"], 0.95)
        print(f"{'browser':<8} {b50:>13.1f}ms {b95:>7.1f}ms   (keystroke → first ghost-text character: JupyterLab's "
              f"completer, the provider, the server, the model; {len(r['browser'])} samples)")
        print(f"added over the model's own latency in the browser: p50 {b50 - d50:.1f} ms, p95 {b95 - d95:.1f} ms "
              f"(goal p95 ≤ {GOAL_P95_MS:.0f} ms: {'met' if b95 - d95 <= GOAL_P95_MS else 'NOT met'})")
    print(f"\ngoal: added p95 ≤ {GOAL_P95_MS:.0f} ms: {added:.1f} ms — {'met' if added <= GOAL_P95_MS else 'NOT met'}")
    print(f"goal: cancel → upstream close ≤ {GOAL_CANCEL_MS:.0f} ms: p95 {c95:.1f} ms — "
          f"{'met' if c95 <= GOAL_CANCEL_MS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
