"""Replicas: two gateway processes on one PostgreSQL (keys, audit, usage) and one Redis (limits, budgets, the
WebSocket resume window), in front of one simulator — revocation, resume, budgets and usage hold across both."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from ernie_widget.testing import ErnieSimulator

psycopg = pytest.importorskip("psycopg")

from ernie_widget.gateway.cli import main as cli_main  # noqa: E402
from ernie_widget.gateway.keys import open_keys  # noqa: E402
from ernie_widget.gateway.store_pg import PgKeyStore, PgUsageStore  # noqa: E402
from ernie_widget.gateway.testing import GatewayProcess, postgres_server, redis_server  # noqa: E402
from ernie_widget.gateway.usage import open_usage  # noqa: E402

from .ws_support import drop as _drop  # noqa: E402
from .ws_support import until_end  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def _until_end(ws: ClientConnection, mid: Any) -> list[dict[str, Any]]:
    return until_end(ws, mid, timeout=15)  # an answer relayed from the other replica: give it longer

SECRET = "replicas-test-secret-0123456789abcdef"
ADMIN = "replicas-admin-token-0123456789"


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[str, str]]:
    """One PostgreSQL cluster and one redis-server for the module (the cluster takes ~2 s to start)."""
    try:
        with postgres_server() as pg, redis_server() as redis_url:
            yield pg, redis_url
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def sim() -> Iterator[ErnieSimulator]:
    with ErnieSimulator() as s:
        yield s


@pytest.fixture(scope="module")
def replicas(services: tuple[str, str], sim: ErnieSimulator) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    pg, redis_url = services
    args = ["--provider", "openai", "--base-url", sim.base_url("openai"), "--redis", redis_url,
            "--resume-grace", "5", "--shutdown-grace", "1"]
    env = {"ERNIE_GATEWAY_KEY_SECRET": SECRET, "ERNIE_GATEWAY_ADMIN_TOKEN": ADMIN,
           "ERNIE_GATEWAY_DATABASE_URL": pg}  # the database URL from the environment, as a deployment would
    a, b = GatewayProcess(args, env=env).launch(), GatewayProcess(args, env=env).launch()  # imports overlap
    with a, b:
        yield a, b


@pytest.fixture
def keys(services: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[PgKeyStore]:
    monkeypatch.setenv("ERNIE_GATEWAY_KEY_SECRET", SECRET)
    store = PgKeyStore(services[0])
    yield store
    store.close()


@pytest.fixture(autouse=True)
def _fresh_answer(sim: ErnieSimulator) -> None:
    sim.set_answer(text="hello from ERNIE")
    sim.clear()


def _ask(client: httpx.Client, gw: GatewayProcess, key: str) -> httpx.Response:
    return client.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"messages": [{"role": "user", "content": "hi"}]})


# -- the stores on their own ----------------------------------------------------------------------------------


def test_the_postgres_key_store_does_what_the_sqlite_one_does(keys: PgKeyStore) -> None:
    key = keys.add("pg-ann", rpm=5, models=["ernie-4.5"], actor="test")
    record = keys.lookup(key)
    assert record is not None and record.name == "pg-ann" and record.rpm == 5 and record.models == ("ernie-4.5",)
    assert keys.lookup(key + "x") is None
    with pytest.raises(ValueError, match="active key"):
        keys.add("pg-ann")
    with pytest.raises(ValueError, match="invalid key name"):
        keys.add("bad\nname")
    new = keys.rotate("pg-ann", grace=60, actor="test")
    old_record, new_record = keys.lookup(key), keys.lookup(new)
    assert old_record is not None and old_record.active and old_record.expires is not None
    assert new_record is not None and new_record.rpm == 5 and new_record.models == ("ernie-4.5",)
    assert keys.revoke("pg-ann", actor="test") and not keys.revoke("pg-ann")
    assert all(r.state == "revoked" for r in keys.list() if r.name == "pg-ann")
    assert [e.action for e in keys.audit(10) if e.target == "pg-ann"] == ["revoke", "rotate", "add"]
    assert key not in json.dumps([r.public() for r in keys.list()])


def test_a_store_outlives_its_connection_being_cut(keys: PgKeyStore, services: tuple[str, str]) -> None:
    key = keys.add("cut")
    with psycopg.connect(services[0], autocommit=True) as admin:  # what a database restart does to a replica
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                      "AND backend_type = 'client backend'")
    record = keys.lookup(key)
    assert record is not None and record.name == "cut"


def test_a_database_that_is_away_is_a_retryable_503_and_costs_no_connect_timeout_per_request(
        services: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from ernie_widget.gateway.auth import Authenticator, AuthError
    from ernie_widget.gateway.settings import GatewaySettings
    from ernie_widget.gateway.testing import free_port

    monkeypatch.setenv("ERNIE_GATEWAY_KEY_SECRET", SECRET)
    store = PgKeyStore(services[0])
    key = store.add("away")
    try:
        store._db.url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"  # the server is gone
        with psycopg.connect(services[0], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                          "AND backend_type = 'client backend'")
        auth = Authenticator(GatewaySettings(), store)
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(AuthError) as info:
                auth.authenticate(key)
            assert info.value.status == 503 and info.value.code == "keys_unavailable"
            assert time.monotonic() - started < 2.5
        store._db.url = services[0]
        store._db._down_until = 0.0  # a second later: the next request reconnects
        assert auth.authenticate(key).user == "away"
    finally:
        store.close()


def test_a_postgres_database_needs_the_shared_key_secret(services: tuple[str, str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ERNIE_GATEWAY_KEY_SECRET", raising=False)
    with pytest.raises(ValueError, match="ERNIE_GATEWAY_KEY_SECRET") as info:
        open_keys(services[0])
    assert "缺少" in str(info.value)  # bilingual


def test_usage_flushes_from_two_stores_add_up_in_one_table(services: tuple[str, str]) -> None:
    one, two = open_usage(services[0]), open_usage(services[0])
    assert isinstance(one, PgUsageStore)
    try:
        one.record("key:tally", "m", 3, 4)
        two.record("key:tally", "m", 10, 20)
        two.record("key:tally", "m", 1, 1)
        one.flush()
        two.flush()
        rows = one.report(user="key:tally")
    finally:
        one.close()
        two.close()
    assert [(r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [(3, 14, 25)]


def test_the_keys_cli_writes_to_the_database(services: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ERNIE_GATEWAY_KEY_SECRET", SECRET)
    assert cli_main(["keys", "add", "cli-pat", "--daily-tokens", "99", "--database-url", services[0]]) == 0
    key = capsys.readouterr().out.strip()
    assert cli_main(["keys", "list", "--json", "--database-url", services[0]]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert any(r["name"] == "cli-pat" and r["daily_tokens"] == 99 for r in listed)
    assert key.startswith("ewk_") and key not in json.dumps(listed)


# -- two replicas -----------------------------------------------------------------------------------------------


def test_a_key_revoked_on_one_replica_is_refused_by_the_other_at_once(
        replicas: tuple[GatewayProcess, GatewayProcess], keys: PgKeyStore) -> None:
    a, b = replicas
    key = keys.add("rev")
    with httpx.Client(timeout=30) as client:
        assert _ask(client, a, key).status_code == 200
        assert _ask(client, b, key).status_code == 200
        revoked = client.delete(a.url + "/admin/keys/rev", headers={"Authorization": f"Bearer {ADMIN}"})
        assert revoked.status_code == 200, revoked.text
        # no sleep: B's very next request reads the database
        refused = _ask(client, b, key)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "revoked_api_key"
        assert _ask(client, a, key).status_code == 401
        # and a key added through B works on A at once
        added = client.post(b.url + "/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"},
                            json={"name": "rev2"})
        assert added.status_code in (200, 201), added.text
        assert _ask(client, a, added.json()["key"]).status_code == 200


def test_one_daily_budget_across_both_replicas(replicas: tuple[GatewayProcess, GatewayProcess],
                                               keys: PgKeyStore) -> None:
    a, b = replicas
    key = keys.add("budget", daily_tokens=10)
    with httpx.Client(timeout=30) as client:
        first = _ask(client, a, key)
        assert first.status_code == 200 and first.json()["usage"]["total_tokens"] >= 10
        refused = _ask(client, b, key)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "daily_budget_exceeded"


def test_usage_from_both_replicas_appears_in_one_report(replicas: tuple[GatewayProcess, GatewayProcess],
                                                        keys: PgKeyStore) -> None:
    a, b = replicas
    key = keys.add("usage")
    with httpx.Client(timeout=30) as client:
        spent = sum(_ask(client, gw, key).json()["usage"]["total_tokens"] for gw in (a, b, b))
        # each replica flushes its tally once a second: poll the report, which asks the database
        deadline = time.monotonic() + 10
        while True:
            report = client.get(a.url + "/admin/usage", params={"user": "key:usage"},
                                headers={"Authorization": f"Bearer {ADMIN}"})
            assert report.status_code == 200, report.text
            body = report.json()
            rows = body["data"] if isinstance(body, dict) else body
            if sum(r["requests"] for r in rows) == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert sum(r["requests"] for r in rows) == 3
    assert sum(r["total_tokens"] for r in rows) == spent


@contextlib.contextmanager
def _session(gw: GatewayProcess, key: str) -> Iterator[ClientConnection]:
    """An authenticated WebSocket (``ready`` received)."""
    with connect(gw.url.replace("http://", "ws://") + "/v1/ws", open_timeout=5) as ws:
        ws.send(json.dumps({"type": "auth", "token": key}))
        ready = json.loads(ws.recv(timeout=5))
        assert ready["type"] == "ready", ready
        yield ws




def test_a_websocket_dropped_from_one_replica_resumes_on_the_other(
        replicas: tuple[GatewayProcess, GatewayProcess], keys: PgKeyStore, sim: ErnieSimulator) -> None:
    a, b = replicas
    key = keys.add("wanderer")
    text = "".join(f"{i:02d}" for i in range(60))
    sim.set_answer(text=text, chunk_size=2, delay=0.03)  # ~1.8 s: still running when resumed
    with _session(a, key) as ws:
        ws.send(json.dumps({"type": "chat", "mid": 7, "messages": [{"role": "user", "content": "count"}]}))
        first = [json.loads(ws.recv(timeout=10)) for _ in range(5)]
        assert [m["seq"] for m in first] == [1, 2, 3, 4, 5]
        _drop(ws)
    with _session(b, key) as ws2:
        ws2.send(json.dumps({"type": "resume", "mid": 7, "seq": 5}))
        rest = _until_end(ws2, 7)
        # a finished answer resumes on the other replica too, from any seq still in the window
        ws2.send(json.dumps({"type": "resume", "mid": 7, "seq": 58}))
        tail = _until_end(ws2, 7)
        ws2.send(json.dumps({"type": "resume", "mid": "never", "seq": 0}))
        assert json.loads(ws2.recv(timeout=5))["code"] == "resume_unavailable"
    deltas = [m for m in first + rest if m["type"] == "delta"]
    assert [m["seq"] for m in deltas] == list(range(1, len(deltas) + 1))  # in order, each once
    assert "".join(m["text"] for m in deltas) == text
    assert rest[-1]["type"] == "done" and rest[-1]["finish_reason"] == "stop"
    assert [m["seq"] for m in tail if m["type"] == "delta"] == list(range(59, len(deltas) + 1))
    assert tail[-1] == rest[-1]
    assert len(sim.chat_requests) == 1 and not sim.chat_requests[0].disconnected  # one upstream answer


def test_another_user_cannot_follow_an_answer_on_another_replica(
        replicas: tuple[GatewayProcess, GatewayProcess], keys: PgKeyStore, sim: ErnieSimulator) -> None:
    a, b = replicas
    owner, other = keys.add("owner"), keys.add("other")
    with _session(a, owner) as ws:
        ws.send(json.dumps({"type": "chat", "mid": 1, "messages": [{"role": "user", "content": "x"}]}))
        assert _until_end(ws, 1)[-1]["type"] == "done"
    with _session(b, other) as ws2:
        ws2.send(json.dumps({"type": "resume", "mid": 1, "seq": 0}))
        assert json.loads(ws2.recv(timeout=5))["code"] == "resume_unavailable"


def test_stop_sent_to_the_other_replica_stops_the_answer(
        replicas: tuple[GatewayProcess, GatewayProcess], keys: PgKeyStore, sim: ErnieSimulator) -> None:
    a, b = replicas
    key = keys.add("stopper")
    sim.set_answer(text="y" * 400, chunk_size=2, delay=0.03)  # ~6 s if nobody stops it
    with _session(a, key) as ws:
        ws.send(json.dumps({"type": "chat", "mid": "s", "messages": [{"role": "user", "content": "x"}]}))
        json.loads(ws.recv(timeout=10))
        _drop(ws)
    started = time.monotonic()
    with _session(b, key) as ws2:
        # the mid is taken while the answer runs, on every replica
        ws2.send(json.dumps({"type": "chat", "mid": "s", "messages": [{"role": "user", "content": "x"}]}))
        assert json.loads(ws2.recv(timeout=5))["code"] == "duplicate_mid"
        ws2.send(json.dumps({"type": "resume", "mid": "s", "seq": 1}))
        ws2.send(json.dumps({"type": "stop", "mid": "s"}))
        end = _until_end(ws2, "s")[-1]
    assert end["type"] == "done" and end["finish_reason"] == "stopped"
    assert time.monotonic() - started < 4


def test_a_follower_gives_up_on_an_answer_whose_replica_died(
        replicas: tuple[GatewayProcess, GatewayProcess], keys: PgKeyStore, services: tuple[str, str]) -> None:
    import redis

    from ernie_widget.gateway.resume_redis import RedisReplayStore

    b = replicas[1]
    key = keys.add("orphan")
    # what a replica killed mid-answer leaves: a stream with no terminal message, and no one keeping it alive
    stream = RedisReplayStore.stream_key("key:orphan", 3)
    r = redis.Redis.from_url(services[1])
    r.xadd(stream, {"m": json.dumps({"type": "_start"})}, id="0-1")
    r.xadd(stream, {"m": json.dumps({"type": "delta", "mid": 3, "seq": 1, "text": "half"})}, id="1-0")
    r.expire(stream, 60)
    with _session(b, key) as ws:
        ws.send(json.dumps({"type": "resume", "mid": 3, "seq": 0}))
        got = _until_end(ws, 3)
    assert got[0]["text"] == "half" and got[-1]["code"] == "answer_lost" and got[-1]["status"] == 502


def test_the_replicas_said_where_their_state_lives(replicas: tuple[GatewayProcess, GatewayProcess]) -> None:
    out = replicas[0].output()
    assert "PostgreSQL" in out and "Redis" in out
    assert os.environ.get("ERNIE_GATEWAY_KEY_SECRET") != SECRET  # the tests' secret never leaked into this process


def test_the_shared_window_keeps_the_bytes_bound_and_withdrawals(services: tuple[str, str]) -> None:
    """The Redis stream is trimmed as the in-memory buffer is: the same gap, and withdrawn text stays gone."""
    import asyncio

    from ernie_widget.gateway.errors import GatewayError
    from ernie_widget.gateway.items import Item
    from ernie_widget.gateway.resume_redis import RedisReplayStore

    async def scenario() -> tuple[str, list[int], list[dict[str, Any]]]:
        here = RedisReplayStore(services[1], max_bytes=1000, ttl=30, grace=5)
        elsewhere = RedisReplayStore(services[1], max_bytes=1000, ttl=30, grace=5)
        try:
            bounded = here.create("key:win", "b")
            for i in range(20):
                bounded.put(Item("text", text=f"{i:02d}" * 20))  # 216 bytes each: 4 fit in 1000
            bounded.put(Item("end", finish_reason="stop"))
            filtered = here.create("key:win", "w")
            filtered.put(Item("text", text="bad words"))
            filtered.put(Item("withdraw", text="[withdrawn]"))
            filtered.put(Item("end", finish_reason="content_filter"))
            await here._write()
            try:
                [m async for m in elsewhere.follow("key:win", "b", 0)]
                gap = "none"
            except GatewayError as err:
                gap = err.code
            tail = [m.get("seq", -1) async for m in elsewhere.follow("key:win", "b", 17)]
            withdrawn = [m async for m in elsewhere.follow("key:win", "w", 0)]
            return gap, tail, withdrawn
        finally:
            await here.aclose()
            await elsewhere.aclose()

    gap, tail, withdrawn = asyncio.run(scenario())
    assert gap == "resume_gap"
    assert tail == [18, 19, 20, -1]  # the last deltas, then the terminal message (no seq)
    assert [m["type"] for m in withdrawn] == ["withdraw", "done"] and "bad" not in json.dumps(withdrawn)
