"""Gateway keys as a team admin runs them: expiry, rotation without a gap, model allow-lists, the admin HTTP API
with its audit log, usage reports (endpoint and CLI), and bounded per-user metrics. Real gateway on a real socket,
in front of the protocol simulator."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import sqlite3
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ernie_widget.gateway import KeyStore
from ernie_widget.gateway.cli import main as gateway_main
from ernie_widget.gateway.testing import gateway_for
from ernie_widget.testing import ErnieSimulator

pytestmark = pytest.mark.timeout(90)

HTTP = httpx.Client(timeout=30)
ADMIN = "admin-token-" + "x" * 24
MODEL_OK = "ernie-4.5-turbo-128k"
MODEL_OTHER = "ernie-speed-128k"


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.sqlite3")


def _chat(gw: Any, token: str, model: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    if model:
        body["model"] = model
    return HTTP.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {token}"}, json=body)


def _admin(gw: Any, method: str, path: str, token: str | None = ADMIN, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    return HTTP.request(method, gw.url + path, headers=headers, **kw)


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = gateway_main(list(argv))
    return code, out.getvalue(), err.getvalue()


# -- keys: expiry, rotation, allow-lists -----------------------------------------------------------------


def test_an_expired_key_is_refused_with_its_reason(ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    key = keys.add("erin", expires_in=0.5)
    with gateway_for(ernie_simulator, keys=keys) as gw:
        assert _chat(gw, key).status_code == 200
        time.sleep(0.6)
        r = _chat(gw, key)
        assert r.status_code == 401 and r.json()["error"]["code"] == "expired_api_key", r.text
        record = keys.lookup(key)
        assert record is not None and record.state == "expired"
        keys.add("erin")  # an expired name may get a new key


def test_rotation_keeps_both_keys_working_for_the_grace_then_only_the_new(ernie_simulator: ErnieSimulator,
                                                                          keys: KeyStore) -> None:
    old = keys.add("rita", rpm=50, models=[MODEL_OK])
    with gateway_for(ernie_simulator, keys=keys) as gw:
        new = keys.rotate("rita", grace=0.8)
        assert new != old
        assert _chat(gw, old, MODEL_OK).status_code == 200  # no gap: both work during the grace
        assert _chat(gw, new, MODEL_OK).status_code == 200
        rotated = keys.lookup(new)
        assert rotated is not None and rotated.rpm == 50 and rotated.models == (MODEL_OK,)
        time.sleep(0.9)
        assert _chat(gw, old, MODEL_OK).json()["error"]["code"] == "expired_api_key"
        assert _chat(gw, new, MODEL_OK).status_code == 200
        with pytest.raises(ValueError):
            keys.rotate("nobody")


def test_a_key_limited_to_some_models_cannot_use_others(ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    key = keys.add("mo", models=[MODEL_OK])
    free = keys.add("fay")
    with gateway_for(ernie_simulator, keys=keys) as gw:
        ernie_simulator.clear()
        assert _chat(gw, key, MODEL_OK).status_code == 200
        r = _chat(gw, key, MODEL_OTHER)
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
        assert r.json()["error"]["param"] == "model"
        assert _chat(gw, key).status_code == 403  # the gateway's default model is not on the list either
        assert _chat(gw, free, MODEL_OTHER).status_code == 200
        assert [req.json.get("model") for req in ernie_simulator.chat_requests] == [MODEL_OK, MODEL_OTHER]
        with pytest.raises(ValueError):
            keys.add("bad", models=["ok", "two\nlines"])


def test_a_first_release_database_is_migrated_and_its_keys_still_work(ernie_simulator: ErnieSimulator,
                                                                      tmp_path: Path) -> None:
    secret = b"s" * 32
    key = "ewk_" + "k" * 43
    path = tmp_path / "v1.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE keys (name TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, hint TEXT NOT NULL, "
                     "rpm INTEGER, tpm INTEGER, daily_tokens INTEGER, created REAL NOT NULL, revoked REAL);")
    db.execute("INSERT INTO keys VALUES (?, ?, ?, 7, NULL, NULL, ?, NULL)",
               ("olga", hmac.new(secret, key.encode(), hashlib.sha256).hexdigest(), key[:8], time.time()))
    db.commit()
    db.close()
    store = KeyStore(path, secret=secret)
    record = store.lookup(key)
    assert record is not None and record.name == "olga" and record.rpm == 7 and record.active
    with gateway_for(ernie_simulator, keys=store) as gw:
        assert _chat(gw, key).status_code == 200
    store.close()
    assert KeyStore(path, secret=secret).lookup(key) is not None  # opening again is a no-op


# -- the admin API ----------------------------------------------------------------------------------------


def test_the_admin_api_is_off_without_a_token_and_refuses_wrong_ones(ernie_simulator: ErnieSimulator,
                                                                     keys: KeyStore) -> None:
    user_key = keys.add("ursula")
    with gateway_for(ernie_simulator, keys=keys) as gw:
        assert _admin(gw, "GET", "/admin/keys").json()["error"]["code"] == "admin_api_off"
    with gateway_for(ernie_simulator, keys=KeyStore(keys.path), admin_token=ADMIN) as gw:
        for token in (None, "wrong", user_key, ADMIN + "x", ADMIN[:-1]):
            r = _admin(gw, "GET", "/admin/keys", token=token)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_token", token
        assert _admin(gw, "GET", "/admin/keys").status_code == 200
    with pytest.raises(ValueError):
        from ernie_widget.gateway import GatewaySettings

        GatewaySettings(admin_token="short").validate()


def test_admin_add_list_rotate_revoke_and_the_audit_log(ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    with gateway_for(ernie_simulator, keys=keys, admin_token=ADMIN) as gw:
        r = _admin(gw, "POST", "/admin/keys", json={"name": "ann", "rpm": 30, "models": [MODEL_OK],
                                                     "expires_in": 3600})
        assert r.status_code == 201, r.text
        key = r.json()["key"]
        assert r.json()["models"] == [MODEL_OK] and r.json()["state"] == "active"
        assert _chat(gw, key, MODEL_OK).status_code == 200
        assert _admin(gw, "POST", "/admin/keys", json={"name": "ann"}).status_code == 400  # active: rotate instead

        listed = _admin(gw, "GET", "/admin/keys")
        assert [row["name"] for row in listed.json()["data"]] == ["ann"]
        assert key not in listed.text and keys.digest(key) not in listed.text

        rotated = _admin(gw, "POST", "/admin/keys/ann/rotate", json={"grace": 60})
        assert rotated.status_code == 201, rotated.text
        new = rotated.json()["key"]
        assert _chat(gw, key, MODEL_OK).status_code == 200 and _chat(gw, new, MODEL_OK).status_code == 200

        assert _admin(gw, "DELETE", "/admin/keys/ann").json() == {"name": "ann", "revoked": True}
        for k in (key, new):
            assert _chat(gw, k, MODEL_OK).json()["error"]["code"] == "revoked_api_key"
        assert _admin(gw, "DELETE", "/admin/keys/ann").status_code == 404

        audit = _admin(gw, "GET", "/admin/audit").json()["data"]
        assert [(e["action"], e["target"]) for e in audit] == [("revoke", "ann"), ("rotate", "ann"), ("add", "ann")]
        assert {e["actor"] for e in audit} == {"admin-api@127.0.0.1"}
        assert key not in json.dumps(audit) and new not in json.dumps(audit)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                 max_size=4), max_leaves=12)
_FIELDS = st.sampled_from(["name", "rpm", "tpm", "daily_tokens", "models", "expires_in", "grace", "key", "x"])


def test_hostile_admin_bodies_are_400s_that_name_the_field(ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    with gateway_for(ernie_simulator, keys=keys, admin_token=ADMIN) as gw:
        deep = "[" * 5000 + "]" * 5000
        r = _admin(gw, "POST", "/admin/keys", content=deep, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert _admin(gw, "POST", "/admin/keys", content=b"x" * (64 << 10)).status_code == 413
        for raw in ('{"name": "a", "rpm": "many"}', '{"name": "a", "rpm": 1e400}', '{"name": "a", "rpm": true}',
                    '{"name": "a", "models": "one"}', '{"name": "a\\nforged"}', '{"name": "a", "admin": true}',
                    '{"name": "a", "expires_in": -1}', '[]', '"name"'):
            r = _admin(gw, "POST", "/admin/keys", content=raw.encode())
            assert r.status_code == 400, (raw, r.text)
            assert r.json()["error"]["message"]

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.dictionaries(_FIELDS, _JSON, max_size=4), st.sampled_from(["/admin/keys", "/admin/keys/zed/rotate"]))
        def fuzz(body: dict[str, Any], path: str) -> None:
            r = _admin(gw, "POST", path, json=body)
            assert r.status_code in (201, 400, 404), (body, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/json")
            if r.status_code == 201:  # a valid body made a key: clean it up for the next example
                _admin(gw, "DELETE", f"/admin/keys/{r.json()['name']}")

        fuzz()
        assert _chat(gw, keys.add("still-alive")).status_code == 200


# -- usage ------------------------------------------------------------------------------------------------


def test_usage_by_day_user_and_model_from_the_api_the_users_endpoint_and_the_cli(
        ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    alice, bob = keys.add("alice"), keys.add("bob")
    with gateway_for(ernie_simulator, keys=keys, admin_token=ADMIN) as gw:
        for _ in range(2):
            assert _chat(gw, alice, MODEL_OK).status_code == 200
        assert _chat(gw, alice, MODEL_OTHER).status_code == 200
        assert _chat(gw, bob, MODEL_OK).status_code == 200
        rows = _admin(gw, "GET", "/admin/usage").json()["data"]
        by = {(r["user"], r["model"]): r for r in rows}
        assert by[("key:alice", MODEL_OK)]["requests"] == 2
        assert by[("key:alice", MODEL_OTHER)]["requests"] == 1
        assert by[("key:bob", MODEL_OK)]["requests"] == 1
        assert all(r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 for r in rows)
        assert {r["day"] for r in rows} == {time.strftime("%Y-%m-%d", time.gmtime())}

        own = HTTP.get(gw.url + "/v1/usage", headers={"Authorization": f"Bearer {bob}"}).json()
        assert own["user"] == "key:bob" and [(r["model"], r["requests"]) for r in own["data"]] == [(MODEL_OK, 1)]
        assert HTTP.get(gw.url + "/v1/usage").status_code == 401
        assert _admin(gw, "GET", "/admin/usage?since=yesterday").status_code == 400
        assert _admin(gw, "GET", "/admin/usage?since=2999-01-01").json()["data"] == []

    code, out, _ = _cli("usage", "--keys", str(keys.path), "--json")
    assert code == 0
    cli_rows = {(r["user"], r["model"]): r["requests"] for r in json.loads(out)}
    assert cli_rows == {(u, m): r["requests"] for (u, m), r in by.items()}
    code, table, _ = _cli("usage", "--keys", str(keys.path), "--user", "key:bob")
    assert code == 0 and "key:bob" in table and "key:alice" not in table


def test_the_cli_audits_and_lists_expiry_and_models(tmp_path: Path) -> None:
    db = str(tmp_path / "k.sqlite3")
    code, key, _ = _cli("keys", "add", "carl", "--models", f"{MODEL_OK},{MODEL_OTHER}", "--expires-in", "90d",
                        "--keys", db)
    assert code == 0 and key.strip().startswith("ewk_")
    code, new, err = _cli("keys", "rotate", "carl", "--grace", "1h", "--keys", db)
    assert code == 0 and new.strip() != key.strip() and "3600" in err
    with pytest.raises(SystemExit):  # argparse refuses a duration it cannot read, naming it
        _cli("keys", "rotate", "carl", "--grace", "soon", "--keys", db)
    code, listed, _ = _cli("keys", "list", "--json", "--keys", db)
    rows = json.loads(listed)
    assert [r["state"] for r in rows] == ["active", "active"]
    assert rows[0]["models"] == sorted([MODEL_OK, MODEL_OTHER]) and rows[0]["expires"] is not None
    code, audit, _ = _cli("audit", "--json", "--keys", db)
    entries = json.loads(audit)
    assert [e["action"] for e in entries] == ["rotate", "add"]
    assert all(e["actor"].startswith("cli:") for e in entries)
    assert key.strip() not in audit and new.strip() not in audit


def test_per_user_metrics_are_opt_in_and_bounded(ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    a, b, c = keys.add("a1"), keys.add("b2"), keys.add("c3")
    with gateway_for(ernie_simulator, keys=keys) as gw:
        assert _chat(gw, a).status_code == 200
        assert "ernie_gateway_user_requests" not in HTTP.get(gw.url + "/metrics").text
    with gateway_for(ernie_simulator, keys=KeyStore(keys.path), metrics_users=2) as gw:
        for k in (a, b, c, c):
            assert _chat(gw, k).status_code == 200
        text = HTTP.get(gw.url + "/metrics").text
        assert 'ernie_gateway_user_requests_total{user="key:a1"} 1.0' in text
        assert 'ernie_gateway_user_requests_total{user="key:b2"} 1.0' in text
        assert 'ernie_gateway_user_requests_total{user="other"} 2.0' in text
        assert "key:c3" not in text
