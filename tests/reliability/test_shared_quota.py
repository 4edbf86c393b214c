"""One RPM budget shared by several processes through a real redis-server.

Three worker processes each build `Ernie(rpm=N, rate_limit_backend="redis://…")` and fire their requests
concurrently at the same simulator (in this process). Whatever each process would allow on its own, the
simulator's request log must never show more than N requests in one window.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ernie_widget
from ernie_widget.gateway.testing import redis_server
from ernie_widget.testing import ErnieSimulator

from ._support import busiest_window, save_result

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = Path(ernie_widget.__file__).resolve().parents[1]
PROCESSES, PER_PROCESS, RPM, WINDOW = 3, 8, 6, 2.0
JITTER = 0.15  # the limiter stamps a request in Redis; it reaches the simulator a little later

_WORKER = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from ernie_widget.client import Ernie
url, base, rpm, n, window, start_at, tag = sys.argv[1:]
client = Ernie("qianfan", base_url=base, api_key="bce-v3/ALTAK-quota/secret", rpm=int(rpm),
               rate_limit_backend=url, max_concurrency=int(n), max_retries=0)
client.aio._rate_limiter.window = float(window)  # a short "minute", the same in every process
while time.time() < float(start_at):  # every process has imported; all start together
    time.sleep(0.001)
with ThreadPoolExecutor(int(n)) as pool:
    texts = list(pool.map(lambda i: client.chat(f"{tag} q{i}").text, range(int(n))))
client.close()
print(json.dumps({"answered": sum(1 for t in texts if t)}))
"""


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    try:
        with redis_server() as url:
            yield url
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_processes_using_one_redis_respect_one_rpm_budget(redis_url: str, ernie_simulator: ErnieSimulator) -> None:
    sim = ernie_simulator
    sim.set_answer(text="ok", chunk_size=2)
    start_at = time.time() + 3.0
    procs = [subprocess.Popen(
        [sys.executable, "-c", _WORKER, redis_url, sim.base_url("qianfan"), str(RPM), str(PER_PROCESS), str(WINDOW),
         str(start_at), f"p{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for i in range(PROCESSES)]
    answered = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        answered.append(json.loads(out.strip().splitlines()[-1])["answered"])

    starts = sorted(r.started for r in sim.chat_requests)
    total = PROCESSES * PER_PROCESS
    assert answered == [PER_PROCESS] * PROCESSES and len(starts) == total
    for i in range(PROCESSES):  # every process really sent its share
        assert sum(1 for r in sim.chat_requests if r.messages[-1]["content"].startswith(f"p{i} ")) == PER_PROCESS
    busiest = busiest_window(starts, WINDOW - JITTER)
    span = starts[-1] - starts[0]
    floor = (total // RPM - 1) * WINDOW  # 24 requests at 6 per window: the last starts 3 windows after the first
    save_result("shared_quota", {"processes": PROCESSES, "requests": total, "rpm": RPM, "window_s": WINDOW,
                                 "busiest_window": busiest, "span_s": round(span, 2), "ideal_span_s": floor,
                                 "jitter_s": JITTER})
    assert busiest <= RPM, f"{busiest} requests within one {WINDOW}s window; the shared budget is {RPM}"
    assert floor - JITTER <= span < floor + WINDOW
