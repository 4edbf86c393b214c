"""Qianfan IAM credentials: the BCE v1 signer, AK/SK → v2 bearer token, ranking, and the QIANFAN_BASE_URL trap.

The signer is compared with Baidu's own (`baidubce.auth.bce_v1_signer.sign`, the dev extra's bce-python-sdk): the
only check of the signature that does not come from this project. Everything else runs against the simulator over
real sockets, whose IAM route recomputes the signature itself (ernie_widget/testing/_iam.py).
"""

from __future__ import annotations

import asyncio
import json
import pickle
import re
import time
import traceback

import httpx2
import pytest

from ernie_widget.client import AsyncErnie, AuthenticationError, ConfigurationError, Ernie, ErnieError
from ernie_widget.client.config import IAM_SOURCE, resolve_config
from ernie_widget.client.iam import BEARER_TOKEN_PATH, canonical_time, sign
from ernie_widget.doctor import run_checks
from ernie_widget.testing import ErnieSimulator, Fault
from ernie_widget.testing._iam import SIM_ACCESS_KEY, SIM_SECRET_KEY

try:  # tests/ may or may not be a package
    from tests.test_cli import run_cli
except ImportError:
    from test_cli import run_cli  # type: ignore[no-redef]

IAM_VARS = ("QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY", "QIANFAN_IAM_BASE_URL")
#: 2024-11-28T06:09:57Z, the createTime of Baidu's documented example answer
FIXED_TS = 1732774197


@pytest.fixture(autouse=True)
def _no_iam_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest clears the other credential variables; a developer's IAM pair must not leak in either."""
    for var in IAM_VARS:
        monkeypatch.delenv(var, raising=False)


def _use(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _iam_requests(sim: ErnieSimulator) -> list:  # type: ignore[type-arg]
    return [r for r in sim.requests if r.surface == "iam"]


def _everything_about(err: BaseException) -> str:
    parts = [str(err), repr(err), "".join(traceback.format_exception(err))]
    if isinstance(err, ErnieError):
        parts += [err.message, repr(err.body), repr(err.code), str(pickle.loads(pickle.dumps(err)))]
    return "\n".join(parts)


# -- the signer against Baidu's ---------------------------------------------------------------------

SIGNER_CASES = {
    # the token request as this package sends it
    "bearer-token request": ("GET", BEARER_TOKEN_PATH, {"expireInSeconds": "43200"},
                             {"Host": "iam.bj.baidubce.com", "x-bce-date": canonical_time(FIXED_TS)},
                             ["host", "x-bce-date"], 300),
    # a query needing every encoding rule: unicode, space (%20, not +), ~ kept, reserved characters, no value
    "query encoding": ("GET", "/v1/BCE-BEARER/token",
                       {"expireInSeconds": "1800", "名字": "值 with space~tilde", "a+b": "c/d?e&f=g", "empty": "",
                        "Upper": "MiXeD"},
                       {"Host": "127.0.0.1:8866", "x-bce-date": canonical_time(FIXED_TS)}, ["host", "x-bce-date"], 1800),
    # headers: trimmed values, an unlisted x-bce-* header (always signed), an empty one (never), an unsigned one
    "headers": ("POST", "/v2/app/conversation",
                {}, {"Host": "qianfan.baidubce.com", "Content-Type": "application/json; charset=utf-8",
                     "x-bce-date": canonical_time(FIXED_TS), "X-Bce-Request-Id": "  id-42  ", "x-bce-empty": "",
                     "User-Agent": "not signed/1.0"}, ["content-type", "host", "x-bce-date"], 300),
    # a path with characters to encode (slashes kept), and no named headers: BCE's default set
    "path and default headers": ("PUT", "/v1/资源/a b~c(1)", {"k": "v"},
                                 {"Host": "iam.bj.baidubce.com", "Content-Length": "12", "x-bce-date": "x"}, None, 60),
}


@pytest.mark.parametrize("case", list(SIGNER_CASES))
def test_signer_equals_baidus_own_signer(case: str) -> None:
    import baidubce.auth.bce_v1_signer as bce_signer  # a dev dependency: missing fails, it is not skipped
    from baidubce import utils
    from baidubce.auth.bce_credentials import BceCredentials

    method, path, params, headers, signed, expiration = SIGNER_CASES[case]
    ak, sk = "ak" + "0123456789abcdef" * 2, "sk 秘密/+=~" + "fedcba9876543210" * 2
    ours = sign(ak, sk, method, path, params, headers, timestamp=FIXED_TS, expiration=expiration,
                signed_headers=signed)
    # Baidu's HTTP client hands its signer the path already encoded (utils.append_uri); a list, not a set, of
    # headers to sign, so its signedHeaders come out in our (sorted) order
    theirs = bce_signer.sign(
        BceCredentials(ak, sk), method.encode(), utils.normalize_string(path, False),
        {k.encode(): v for k, v in headers.items()}, {k.encode(): v for k, v in params.items()},
        timestamp=FIXED_TS, expiration_in_seconds=expiration,
        headers_to_sign=[h.encode() for h in signed] if signed else None,
    ).decode()
    assert ours == theirs
    assert re.fullmatch(r"bce-auth-v1/[^/]+/2024-11-28T06:09:57Z/\d+/[a-z;-]*/[0-9a-f]{64}", ours)


def test_the_simulator_verifies_the_signature_and_its_age(ernie_simulator: ErnieSimulator) -> None:
    url = ernie_simulator.url + BEARER_TOKEN_PATH
    host = url.split("/")[2]

    def get(*, timestamp: float, secret: str = SIM_SECRET_KEY, sent: str = "600") -> httpx2.Response:
        headers = {"Host": host, "x-bce-date": canonical_time(timestamp)}
        headers["Authorization"] = sign(SIM_ACCESS_KEY, secret, "GET", BEARER_TOKEN_PATH,
                                        {"expireInSeconds": "600"}, headers, timestamp=timestamp,
                                        signed_headers=["host", "x-bce-date"])
        return httpx2.get(url, params={"expireInSeconds": sent}, headers=headers)

    good = get(timestamp=time.time())
    assert good.status_code == 200 and good.json()["token"].startswith("bce-v3/ALTAK-")
    assert good.json()["status"] == "enable" and good.json()["expireTime"] > good.json()["createTime"]
    for response, code in ((get(timestamp=time.time() - 3600), "RequestExpired"),
                           (get(timestamp=time.time(), secret="another-secret-key"), "SignatureDoesNotMatch"),
                           (get(timestamp=time.time(), sent="2592000"), "SignatureDoesNotMatch")):  # tampered query
        assert response.status_code == 401
        assert response.json()["code"] == code and response.headers["x-bce-error-code"] == code
        assert "requestId" in response.json()
    assert ernie_simulator.iam.tokens_issued == 1


# -- AK/SK → bearer token, end to end ---------------------------------------------------------------


def test_iam_env_alone_streams_an_answer_with_one_cached_token(ernie_simulator: ErnieSimulator,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    env = ernie_simulator.env("qianfan-iam")
    del env["ERNIE_PROVIDER"]  # chosen from the IAM pair alone
    _use(monkeypatch, env)
    with Ernie() as client:
        assert client.provider == "qianfan" and client.config.iam
        with client.stream("你好") as s:
            text = "".join(ev.text for ev in s if ev.type == "text")
        assert text == "你好！You said: 你好"
        assert client.chat("again").text == "你好！You said: again"
        shown = "\n".join([repr(client), str(client), repr(client.config)])
    (fetch,) = _iam_requests(ernie_simulator)  # one token for both answers
    assert fetch.method == "GET" and fetch.query == {"expireInSeconds": "43200"}
    assert re.fullmatch(rf"bce-auth-v1/{SIM_ACCESS_KEY}/[0-9T:-]+Z/300/host;x-bce-date/[0-9a-f]{{64}}",
                        fetch.headers["authorization"])
    token = json.loads(fetch.response_body)["token"]
    chats = ernie_simulator.chat_requests
    assert [r.headers["authorization"] for r in chats] == [f"Bearer {token}"] * 2
    assert SIM_SECRET_KEY not in shown and token not in shown


def test_a_token_the_service_expired_is_replaced_once_and_the_request_resent(
        ernie_simulator: ErnieSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, ernie_simulator.env("qianfan-iam"))
    with Ernie() as client:
        client.chat("one")
        ernie_simulator.iam.expire_tokens()  # the chat route now answers 401 invalid_iam_token to it
        assert client.chat("two").text == "你好！You said: two"
        assert client.chat("three").text == "你好！You said: three"
    assert len(_iam_requests(ernie_simulator)) == 2
    statuses = [r.status for r in ernie_simulator.chat_requests]
    assert statuses == [200, 401, 200, 200]  # one refusal, then the fresh token serves on


def test_a_token_is_replaced_shortly_before_it_expires(ernie_simulator: ErnieSimulator,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ernie_simulator.iam.lifetime = 1.0  # the service's createTime/expireTime say one second
    _use(monkeypatch, ernie_simulator.env("qianfan-iam"))
    with Ernie() as client:
        client.chat("one")
        time.sleep(1.0)
        client.chat("two")
    assert len(_iam_requests(ernie_simulator)) == 2
    assert [r.status for r in ernie_simulator.chat_requests] == [200, 200]  # replaced before, not after, a 401


def test_concurrent_async_requests_share_one_token_fetch(ernie_simulator: ErnieSimulator,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, ernie_simulator.env("qianfan-iam"))

    async def main() -> list[str]:
        async with AsyncErnie() as client:
            replies = await asyncio.gather(*(client.chat(f"q{i}") for i in range(6)))
        return [r.text for r in replies]

    assert asyncio.run(main()) == [f"你好！You said: q{i}" for i in range(6)]
    assert len(_iam_requests(ernie_simulator)) == 1


@pytest.mark.parametrize(("who", "hint"), [("secret", "QIANFAN_SECRET_KEY"), ("access", "QIANFAN_ACCESS_KEY")])
def test_a_wrong_key_pair_is_an_authentication_error_that_never_shows_the_secret(
        ernie_simulator: ErnieSimulator, monkeypatch: pytest.MonkeyPatch, who: str, hint: str) -> None:
    wrong_sk = "0wrong0secret0key0" + "a1b2c3d4e5f6a7b8"
    if who == "secret":
        env = ernie_simulator.env("qianfan-iam", secret_key=wrong_sk)
    else:
        env = ernie_simulator.env("qianfan-iam", api_key="0unknown0access0key0" + "1234567890ab",
                                  secret_key=wrong_sk)
    _use(monkeypatch, env)
    client = Ernie(max_retries=2)
    with pytest.raises(AuthenticationError) as info:
        client.chat("你好")
    err = info.value
    assert re.search(r"[\u4e00-\u9fff]", err.message) and " / " in err.message  # 中文 / English
    assert hint in err.message
    assert wrong_sk not in _everything_about(err) + repr(client) + repr(client.config)
    assert len(_iam_requests(ernie_simulator)) == 1  # not retried: a key does not get better
    assert ernie_simulator.chat_requests == []  # no chat request without a token
    client.close()


def test_a_refused_api_key_is_not_refreshed(ernie_simulator: ErnieSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, ernie_simulator.env("qianfan"))  # an API key: nothing to mint again
    ernie_simulator.push(Fault.status(401))  # invalid_iam_token
    with pytest.raises(AuthenticationError):
        Ernie(max_retries=2).chat("hi")
    assert len(ernie_simulator.chat_requests) == 1 and _iam_requests(ernie_simulator) == []


# -- which credentials win --------------------------------------------------------------------------

API_KEY = {"QIANFAN_API_KEY": "bce-v3/ALTAK-rank/0123456789"}
AK_SK = {"QIANFAN_AK": "v1-ak-rank", "QIANFAN_SK": "v1-sk-rank"}
IAM = {"QIANFAN_ACCESS_KEY": "iam-ak-rank", "QIANFAN_SECRET_KEY": "iam-sk-rank"}


@pytest.mark.parametrize(("env", "provider", "source", "iam"), [
    ({**API_KEY, **AK_SK, **IAM}, "qianfan", "QIANFAN_API_KEY", False),
    ({**AK_SK, **IAM}, "qianfan-v1", "QIANFAN_AK/QIANFAN_SK (OAuth)", False),
    (IAM, "qianfan", IAM_SOURCE, True),
    ({**IAM, "AISTUDIO_ACCESS_TOKEN": "studio-token"}, "aistudio", "AISTUDIO_ACCESS_TOKEN", False),
    ({**API_KEY, **IAM, "ERNIE_PROVIDER": "qianfan"}, "qianfan", "QIANFAN_API_KEY", False),
    ({**AK_SK, **IAM, "ERNIE_PROVIDER": "qianfan"}, "qianfan", IAM_SOURCE, True),  # v1 keys cannot serve v2
])
def test_api_key_beats_ak_sk_beats_iam(env: dict[str, str], provider: str, source: str, iam: bool) -> None:
    cfg = resolve_config(env=env)
    assert (cfg.provider, cfg.credential_source, cfg.iam) == (provider, source, iam)
    if iam:
        assert (cfg.api_key, cfg.secret_key) == ("iam-ak-rank", "iam-sk-rank")
        assert cfg.extra["QIANFAN_IAM_BASE_URL"] == "https://iam.bj.baidubce.com"
    assert "sk-rank" not in repr(cfg)


def test_half_an_iam_pair_selects_nothing_and_says_what_is_missing() -> None:
    with pytest.raises(ConfigurationError, match="QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY"):
        resolve_config("qianfan", env={"QIANFAN_ACCESS_KEY": "only-the-ak"})


# -- QIANFAN_BASE_URL in the qianfan SDK's sense ----------------------------------------------------


@pytest.mark.parametrize("url", ["https://aip.baidubce.com", "https://qianfan.baidubce.com",
                                 "https://qianfan.baidubce.com/", "https://user:pw@qianfan.baidubce.com/v2/chat/completions",
                                 "https://QIANFAN.BAIDUBCE.COM/v1?token=abc"])
def test_a_qianfan_base_url_without_v2_is_refused_with_the_value_to_use(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_config(env={**API_KEY, "QIANFAN_BASE_URL": url})
    msg = info.value.message
    assert "QIANFAN_BASE_URL=https://qianfan.baidubce.com/v2" in msg and "404" in msg
    assert re.search(r"[\u4e00-\u9fff]", msg) and " / " in msg
    assert "pw" not in msg and "token=abc" not in msg  # never echoes a password or a query
    with pytest.raises(ConfigurationError, match=re.escape("set base_url=https://qianfan.baidubce.com/v2")):
        resolve_config("qianfan", api_key="bce-v3/ALTAK-x/y", base_url=url, env={})


@pytest.mark.parametrize("url", ["https://qianfan.baidubce.com/v2", "https://qianfan.baidubce.com/v2/",
                                 "https://gateway.example.com/ernie", "http://127.0.0.1:8000"])
def test_other_base_urls_are_taken_as_given(url: str) -> None:
    assert resolve_config(env={**API_KEY, "QIANFAN_BASE_URL": url}).base_url == url.rstrip("/")


def test_the_simulators_urls_are_accepted(ernie_simulator: ErnieSimulator) -> None:
    for url in (ernie_simulator.base_url("qianfan"), ernie_simulator.url):  # with and without /v2
        cfg = resolve_config(env={**ernie_simulator.env("qianfan-iam"), "QIANFAN_BASE_URL": url})
        assert cfg.base_url == url and cfg.iam
    assert Ernie("qianfan", api_key="bce-v3/ALTAK-k/s", base_url=ernie_simulator.base_url("qianfan")).chat("x").text


# -- the doctor -------------------------------------------------------------------------------------


def test_doctor_names_the_iam_credentials_and_mints_a_token(ernie_simulator: ErnieSimulator) -> None:
    proc = run_cli("doctor", env=ernie_simulator.env("qianfan-iam"))
    assert proc.returncode == 0, proc.stdout
    assert "✓ credentials: 来自 / from QIANFAN_ACCESS_KEY/QIANFAN_SECRET_KEY (IAM → bearer token" in proc.stdout
    assert "✓ key" in proc.stdout
    assert SIM_SECRET_KEY not in proc.stdout + proc.stderr
    assert len(_iam_requests(ernie_simulator)) == 1 and len(ernie_simulator.chat_requests) == 1


def test_doctor_reports_a_refused_iam_pair_with_the_half_to_check(ernie_simulator: ErnieSimulator) -> None:
    proc = run_cli("doctor", env=ernie_simulator.env("qianfan-iam", secret_key="0wrong0secret0key0abcdef12"))
    assert proc.returncode == 1
    line = next(x for x in proc.stdout.splitlines() if x.startswith("✗ key"))
    assert "QIANFAN_SECRET_KEY" in line and "0wrong0secret0key0abcdef12" not in proc.stdout + proc.stderr


def test_doctor_names_the_base_url_trap(monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, {**API_KEY, "QIANFAN_BASE_URL": "https://aip.baidubce.com"})
    lines = [str(c) for c in run_checks(probe_key=False)]
    (line,) = [x for x in lines if x.startswith("✗ base_url")]
    assert "QIANFAN_BASE_URL=https://qianfan.baidubce.com/v2" in line
    assert not any(x.startswith("✗ config") for x in lines)  # not the "set a key" advice: the key is fine
    # with Qianfan v1 chosen the variable is unused: a warning for the day v2 is
    _use(monkeypatch, AK_SK)
    monkeypatch.delenv("QIANFAN_API_KEY")
    monkeypatch.setenv("QIANFAN_V1_BASE_URL", "http://127.0.0.1:9")
    lines = [str(c) for c in run_checks(probe_key=False)]
    assert any(x.startswith("! base_url") and "qianfan-v1" in x for x in lines)
