"""Two gateway processes share one user's limits and daily budget through a real redis-server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from ernie_widget.gateway import KeyStore
from ernie_widget.gateway.testing import GatewayProcess
from ernie_widget.testing import ErnieSimulator

pytestmark = pytest.mark.timeout(90)


def _ask(client: httpx.Client, gw: GatewayProcess, key: str) -> httpx.Response:
    return client.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"messages": [{"role": "user", "content": "hi"}]})


def test_two_replicas_share_one_limit_and_budget(ernie_simulator: ErnieSimulator, redis_url: str,
                                                 tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.sqlite3")  # both replicas read the same file (and its .secret)
    limited = keys.add("pat", rpm=3)
    budget = keys.add("quinn", daily_tokens=10)
    keys.close()
    args = ["--provider", "openai", "--base-url", ernie_simulator.base_url("openai"),
            "--keys", str(tmp_path / "keys.sqlite3"), "--redis", redis_url]
    a, b = GatewayProcess(args).launch(), GatewayProcess(args).launch()  # both import at once
    with a, b, httpx.Client(timeout=30) as client:
        codes = [_ask(client, gw, limited).status_code for gw in (a, b, a)]
        over_b = _ask(client, b, limited)
        over_a = _ask(client, a, limited)
        # one replica spends the daily budget; the other refuses the next request
        first = _ask(client, a, budget)
        spent = first.json()["usage"]["total_tokens"]
        assert spent >= 10
        refused = _ask(client, b, budget)
    assert codes == [200, 200, 200]
    assert over_b.status_code == 429 and over_a.status_code == 429
    assert 1 <= int(over_b.headers["retry-after"]) <= 60
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "daily_budget_exceeded"
    assert len(ernie_simulator.chat_requests) == 4
    # each process wrote its own JSON access lines to stderr
    lines = [json.loads(line) for gw in (a, b) for line in gw.output().splitlines() if line.startswith("{")]
    assert sorted(r["status"] for r in lines) == [200, 200, 200, 200, 429, 429, 429]
    assert {r["user"] for r in lines} == {"pat", "quinn"}


def test_concurrent_requests_on_two_replicas_cannot_overspend_a_shared_budget(
        ernie_simulator: ErnieSimulator, redis_url: str, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import redis

    keys = KeyStore(tmp_path / "keys.sqlite3")
    key = keys.add("rhea", daily_tokens=60)
    keys.close()
    ernie_simulator.set_answer(text="x" * 45, chunk_size=5, delay=0.05)  # ~49 tokens, ~0.5 s
    args = ["--provider", "openai", "--base-url", ernie_simulator.base_url("openai"),
            "--keys", str(tmp_path / "keys.sqlite3"), "--redis", redis_url]
    a, b = GatewayProcess(args).launch(), GatewayProcess(args).launch()
    with a, b, httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(lambda i: _ask(client, (a, b)[i % 2], key).status_code, range(8)))
    assert codes == [200] + [429] * 7
    r = redis.Redis.from_url(redis_url)
    used = sum(int(r.get(k) or 0) for k in r.scan_iter("*daily*key:rhea*"))
    assert 40 <= used <= 60  # the reservation was replaced by the real usage, within the budget
