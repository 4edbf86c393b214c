"""Gateway auth (API keys, JWT), per-user limits and budgets, and the key-management CLI."""

from __future__ import annotations

import io
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import httpx
import jwt
import openai
import pytest

from ernie_widget.client import AuthenticationError, Ernie, RateLimitError
from ernie_widget.gateway import GatewaySettings, KeyStore, create_app
from ernie_widget.gateway.cli import main as gateway_main
from ernie_widget.gateway.testing import gateway_for
from ernie_widget.testing import ErnieSimulator

pytestmark = pytest.mark.timeout(60)

# one client for the whole module: HTTP.post() would build a new SSL context (~50 ms) every call
HTTP = httpx.Client(timeout=30)

JWT_SECRET = "a-test-secret-that-is-long-enough-for-hs256"


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.sqlite3")


def _post(gw, token: str | None = None, **body) -> httpx.Response:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return HTTP.post(gw.url + "/v1/chat/completions", headers=headers,
                      json={"messages": [{"role": "user", "content": "hi"}], **body})


def _token(sub: str = "dana", secret: str = JWT_SECRET, exp_in: float = 300, **claims) -> str:  # type: ignore[no-untyped-def]
    return jwt.encode({"sub": sub, "exp": int(time.time() + exp_in), **claims}, secret, algorithm="HS256")


# -- API keys ---------------------------------------------------------------------------------------


def test_keys_are_random_prefixed_and_stored_only_as_digests(keys: KeyStore) -> None:
    a, b = keys.add("alice"), keys.add("bob")
    assert a.startswith("ewk_") and len(a) >= 40 and a != b
    raw = keys.path.read_bytes() + b"".join(p.read_bytes() for p in keys.path.parent.glob("*-wal"))
    assert a.encode() not in raw and a[4:].encode() not in raw
    record = keys.lookup(a)
    assert record is not None and record.name == "alice" and record.active


def test_a_valid_key_works_with_every_client(ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    key = keys.add("alice")
    with gateway_for(ernie_simulator, keys=keys) as gw:
        assert Ernie(provider="openai", base_url=gw.url + "/v1", api_key=key).chat("hi").text
        sdk = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        assert sdk.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}]).choices
    # the gateway's own upstream key went upstream, never the user's
    assert all(key not in str(r.headers) for r in ernie_simulator.chat_requests)


def test_auth_failures_are_401_with_a_reason(ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    key = keys.add("erin")
    with gateway_for(ernie_simulator, keys=keys) as gw:
        missing = _post(gw)
        bad = _post(gw, "ewk_" + "x" * 43)
        not_a_key = _post(gw, "hello-world")
        assert keys.revoke("erin")
        revoked = _post(gw, key)
        with pytest.raises(AuthenticationError):
            Ernie(provider="openai", base_url=gw.url + "/v1", api_key=key, max_retries=0).chat("hi")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0).chat.completions.create(
                model="default", messages=[{"role": "user", "content": "x"}])
    assert [r.status_code for r in (missing, bad, not_a_key, revoked)] == [401] * 4
    assert missing.json()["error"]["code"] == "missing_api_key"
    assert bad.json()["error"]["code"] == "invalid_api_key"
    assert not_a_key.json()["error"]["code"] == "invalid_api_key"
    assert revoked.json()["error"]["code"] == "revoked_api_key"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert not ernie_simulator.chat_requests


def test_a_revoked_name_can_get_a_new_key(keys: KeyStore) -> None:
    old = keys.add("frank")
    with pytest.raises(ValueError):
        keys.add("frank")
    keys.revoke("frank")
    new = keys.add("frank")
    assert keys.lookup(new) is not None and keys.lookup(new).active  # type: ignore[union-attr]
    old_record = keys.lookup(old)  # the old key stays on record, revoked: its user is told so, not "invalid"
    assert old_record is not None and old_record.state == "revoked"


# -- JWT ------------------------------------------------------------------------------------------


def test_jwt_hs256(ernie_simulator: ErnieSimulator) -> None:
    with gateway_for(ernie_simulator, jwt_secret=JWT_SECRET) as gw:
        ok = _post(gw, _token())
        wrong_secret = _post(gw, _token(secret="another-secret-that-is-long-enough-000"))
        expired = _post(gw, _token(exp_in=-120))
        garbage = _post(gw, "not.a.jwt")
        no_sub = _post(gw, jwt.encode({"exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS256"))
        unsigned = _post(gw, jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, None, algorithm="none"))
    assert ok.status_code == 200
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"]["code"] == "invalid_token"
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "token_expired"
    assert garbage.status_code == 401 and no_sub.status_code == 401 and unsigned.status_code == 401


def test_jwt_rs256_and_no_algorithm_confusion(ernie_simulator: ErnieSimulator) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    claims = {"sub": "gus", "exp": int(time.time()) + 60}
    with gateway_for(ernie_simulator, jwt_public_key=public_pem) as gw:
        ok = _post(gw, jwt.encode(claims, private, algorithm="RS256"))
        hs = _post(gw, _token("gus"))
    assert ok.status_code == 200
    assert hs.status_code == 401  # an HS256 token is refused when RS256 is configured


# -- limits and budgets --------------------------------------------------------------------------


def test_per_user_rpm_is_429_with_retry_after(ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    limited = keys.add("hana", rpm=2)
    other = keys.add("ivan", rpm=2)
    with gateway_for(ernie_simulator, keys=keys) as gw:
        codes = [_post(gw, limited).status_code for _ in range(2)]
        third = _post(gw, limited)
        assert _post(gw, other).status_code == 200  # limits are per user
        with pytest.raises(RateLimitError) as err:
            Ernie(provider="openai", base_url=gw.url + "/v1", api_key=limited, max_retries=0).chat("hi")
        with pytest.raises(openai.RateLimitError):
            openai.OpenAI(base_url=gw.url + "/v1", api_key=limited, max_retries=0).chat.completions.create(
                model="default", messages=[{"role": "user", "content": "x"}])
    assert codes == [200, 200]
    assert third.status_code == 429 and third.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert err.value.retry_after is not None and err.value.retry_after > 0
    assert len(ernie_simulator.chat_requests) == 3


def test_per_user_tpm_counts_the_estimate_then_the_real_usage(ernie_simulator: ErnieSimulator,
                                                             keys: KeyStore) -> None:
    key = keys.add("jo", tpm=300)
    with gateway_for(ernie_simulator, keys=keys) as gw:
        first = _post(gw, key, max_tokens=250)  # estimate ~255 fits; real usage is ~20
        second = _post(gw, key, max_tokens=250)  # the window now holds ~20, so this fits again
        third = _post(gw, key, max_tokens=290)  # ~40 used + ~295 estimate > 300
    assert first.status_code == 200 and second.status_code == 200
    assert third.status_code == 429 and third.json()["error"]["code"] == "rate_limit_exceeded"


def test_daily_token_budget(ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    key = keys.add("kim", daily_tokens=30)
    with gateway_for(ernie_simulator, keys=keys) as gw:
        first = _post(gw, key)
        used = first.json()["usage"]["total_tokens"]
        second = _post(gw, key) if used < 30 else first
        after = _post(gw, key)
        assert gw.gateway.quotas.daily_used("key:kim") >= 30
    assert first.status_code == 200 and second.status_code == 200
    assert after.status_code == 429 and after.json()["error"]["code"] == "daily_budget_exceeded"
    until_midnight = 86400 - time.time() % 86400
    assert abs(int(after.headers["retry-after"]) - until_midnight) < 5


def test_default_limits_apply_to_jwt_users_and_claims_override(ernie_simulator: ErnieSimulator) -> None:
    with gateway_for(ernie_simulator, jwt_secret=JWT_SECRET, default_rpm=1) as gw:
        assert _post(gw, _token("lee")).status_code == 200
        assert _post(gw, _token("lee")).status_code == 429
        generous = _token("max", rpm=5)
        assert [_post(gw, generous).status_code for _ in range(3)] == [200, 200, 200]


# -- configuration and CLI --------------------------------------------------------------------------


def test_no_auth_is_refused_off_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        create_app(GatewaySettings(no_auth=True, host="0.0.0.0", provider="openai", base_url="http://127.0.0.1:9"))
    err = io.StringIO()
    with redirect_stderr(err):
        code = gateway_main(["--no-auth", "--host", "0.0.0.0", "--provider", "openai",
                             "--base-url", "http://127.0.0.1:9"])
    assert code == 2 and "--no-auth" in err.getvalue()
    from ernie_widget.__main__ import main as cli_main

    with redirect_stderr(io.StringIO()):
        assert cli_main(["serve", "--no-auth", "--host", "0.0.0.0"]) == 2


def test_keys_cli_add_list_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "k.sqlite3")

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = gateway_main(["keys", "--keys", db, *argv])
        return code, out.getvalue(), err.getvalue()

    code, out, err = run("add", "nina", "--rpm", "10", "--tpm", "5000", "--daily-tokens", "100000")
    key = out.strip()
    assert code == 0 and key.startswith("ewk_") and "not shown again" in err
    code, listing, _ = run("list")
    assert code == 0 and "nina" in listing and "active" in listing and "100000" in listing
    assert key not in listing and key[:8] in listing  # only a short hint
    assert run("add", "nina")[0] == 1  # one active key per name
    assert run("revoke", "nina")[0] == 0
    assert "revoked" in run("list")[1]
    assert run("revoke", "nina")[0] == 1
    record = KeyStore(db).lookup(key)
    assert record is not None and not record.active and record.rpm == 10


# -- identities, budgets under concurrency, key names ---------------------------------------------------


def test_a_jwt_subject_is_not_the_key_user_of_the_same_name(ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    import json

    from websockets.sync.client import connect

    key = keys.add("alice", rpm=1)
    with gateway_for(ernie_simulator, keys=keys, jwt_secret=JWT_SECRET, default_rpm=1) as gw:
        assert _post(gw, key).status_code == 200
        assert _post(gw, key).status_code == 429  # alice's key: one request a minute
        assert _post(gw, _token("alice")).status_code == 200  # jwt:alice has her own minute
        ernie_simulator.set_answer(text="slow " * 40, chunk_size=5, delay=0.05)  # still running when resumed
        url = gw.url.replace("http://", "ws://") + "/v1/ws"
        with connect(url) as owner:
            owner.send(json.dumps({"type": "auth", "token": _token("bob")}))
            assert json.loads(owner.recv(timeout=5))["type"] == "ready"
            owner.send(json.dumps({"type": "chat", "mid": 1, "messages": [{"role": "user", "content": "x"}]}))
            assert json.loads(owner.recv(timeout=5))["type"] == "delta"
            bob = keys.add("bob")
            with connect(url) as other:  # the key user "bob" must not resume jwt:bob's answer
                other.send(json.dumps({"type": "auth", "token": bob}))
                assert json.loads(other.recv(timeout=5))["type"] == "ready"
                other.send(json.dumps({"type": "resume", "mid": 1, "seq": 0}))
                assert json.loads(other.recv(timeout=5))["code"] == "resume_unavailable"
    assert gw.gateway.quotas.daily_used("key:alice") == 0  # no budget: nothing counted under either


def test_concurrent_requests_cannot_overspend_a_daily_budget(ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    key = keys.add("lena", daily_tokens=60)
    ernie_simulator.set_answer(text="x" * 45, chunk_size=5, delay=0.05)  # ~49 tokens with the prompt
    with gateway_for(ernie_simulator, keys=keys) as gw:
        with ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(lambda _: _post(gw, key).status_code, range(8)))
        used = gw.gateway.quotas.daily_used("key:lena")
    assert codes == [200] + [429] * 7
    assert 40 <= used <= 60
    upstream = ernie_simulator.chat_requests
    assert len(upstream) == 1
    assert 0 < upstream[0].json["max_completion_tokens"] <= 60  # the answer was capped to the budget's rest


def test_tpm_refuses_a_first_request_larger_than_the_limit(ernie_simulator: ErnieSimulator, keys: KeyStore) -> None:
    key = keys.add("omar", tpm=100)
    with gateway_for(ernie_simulator, keys=keys) as gw:
        big = _post(gw, key, max_tokens=500)
        small = _post(gw, key, max_tokens=50)
    assert big.status_code == 400 and big.json()["error"]["code"] == "request_exceeds_tpm"
    assert small.status_code == 200
    assert len(ernie_simulator.chat_requests) == 1


@pytest.mark.parametrize("name", ["bob\nmallory   ewk_fake…  -  -  -  active", "a b", "", " x", "x" * 65,
                                  "tab\there", "nul\0", "名字", "_under"])
def test_key_names_are_plain_identifiers(tmp_path: Path, name: str) -> None:
    store = KeyStore(tmp_path / "k.sqlite3")
    with pytest.raises(ValueError, match="invalid key name"):
        store.add(name)
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        assert gateway_main(["keys", "--keys", str(tmp_path / "k.sqlite3"), "add", name]) == 1
    assert store.list() == []
    for ok in ("alice", "ci-bot_2", "a.b@example.com", "x" * 64):
        assert store.add(ok).startswith("ewk_")
