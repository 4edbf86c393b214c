"""The ERNIE protocol simulator, checked over real sockets with raw httpx2 (no ernie_widget client)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ernie_widget.testing import Answer, ErnieSimulator, Fault

pytest_plugins = ["ernie_widget.testing.fixtures"]

ROOT = Path(__file__).resolve().parents[1]
V1_CHAT = "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/ernie-speed-128k"
BEARER = {"Authorization": "Bearer bce-v3/ALTAK-test/secret"}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def sim(ernie_simulator: ErnieSimulator) -> ErnieSimulator:
    return ernie_simulator


@pytest.fixture
def client() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=5) as c:
        yield c


def chat_url(sim: ErnieSimulator, surface: str) -> str:
    if surface == "qianfan-v1":
        return sim.url + V1_CHAT
    return sim.base_url(surface) + "/chat/completions"


def request_kwargs(sim: ErnieSimulator, surface: str, *, stream: bool, **body: Any) -> dict[str, Any]:
    """URL, auth and JSON body for one chat request on `surface`."""
    payload: dict[str, Any] = {"messages": HI, "stream": stream, **body}
    kwargs: dict[str, Any] = {"url": chat_url(sim, surface), "json": payload}
    if surface == "qianfan-v1":
        kwargs["params"] = {"access_token": sim.issue_token()}
    else:
        payload.setdefault("model", "ernie-4.5-turbo-128k")
        kwargs["headers"] = dict(BEARER)
    return kwargs


def stream_lines(client: httpx2.Client, sim: ErnieSimulator, surface: str, **body: Any) -> list[str]:
    with client.stream("POST", **request_kwargs(sim, surface, stream=True, **body)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return [line for line in r.iter_lines() if line]


def data_objects(lines: list[str]) -> list[Any]:
    out = []
    for line in lines:
        assert line.startswith("data: "), line
        value = line[len("data: ") :].strip()
        out.append(value if value == "[DONE]" else json.loads(value))
    return out


def text_of(objs: list[Any], key: str = "content") -> str:
    return "".join(
        (o["choices"][0]["delta"].get(key) or "") for o in objs if isinstance(o, dict) and o["choices"]
    )


# -- each surface, stream and non-stream -------------------------------------------------------------------


def test_default_answer_echoes_last_user_message(sim: ErnieSimulator, client: httpx2.Client) -> None:
    r = client.post(
        **request_kwargs(sim, "qianfan", stream=False, messages=[{"role": "user", "content": "早上好"}])
    )
    assert r.json()["choices"][0]["message"]["content"] == "你好！You said: 早上好"


@pytest.mark.parametrize("surface", ["qianfan", "aistudio"])
def test_v2_style_stream_has_chunks_finish_normal_usage_and_done(
    sim: ErnieSimulator, client: httpx2.Client, surface: str
) -> None:
    sim.set_answer(text="你好世界，这是测试", chunk_size=4)
    objs = data_objects(stream_lines(client, sim, surface, stream_options={"include_usage": True}))
    assert objs[-1] == "[DONE]"
    usage_chunk = objs[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 9
    content = objs[:-2]
    assert [c["choices"][0]["delta"]["content"] for c in content] == ["你好世界", "，这是测", "试"]
    assert [c["choices"][0]["finish_reason"] for c in content] == [None, None, "normal"]
    assert all(c["id"].startswith("as-") for c in content)
    assert sim.chat_requests[-1].surface == surface
    assert sim.chat_requests[-1].chunks_sent == 3


def test_v2_stream_without_include_usage_has_no_usage_chunk(
    sim: ErnieSimulator, client: httpx2.Client
) -> None:
    objs = data_objects(stream_lines(client, sim, "qianfan"))
    assert objs[-1] == "[DONE]"
    assert all(o["choices"] for o in objs[:-1])
    assert text_of(objs) == "你好！You said: hi"


def test_v2_non_stream_envelope_and_rate_limit_headers(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.set_answer(text="答案", reasoning="想一想")
    kwargs = request_kwargs(sim, "qianfan", stream=False)
    kwargs["headers"]["X-Request-Id"] = "my-id-1"
    r = client.post(**kwargs)
    body = r.json()
    assert r.headers["content-type"].startswith("application/json") and "content-length" in r.headers
    assert body["object"] == "chat.completion" and body["id"].startswith("as-")
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "答案", "reasoning_content": "想一想"}
    assert choice["finish_reason"] == "normal"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}
    assert r.headers["x-ratelimit-limit-requests"] == "3000"
    assert r.headers["x-ratelimit-limit-tokens"] == "300000"
    assert r.headers["x-request-id"] == r.headers["x-baidu-request-id"] == "my-id-1"


def test_aistudio_non_stream_envelope(sim: ErnieSimulator, client: httpx2.Client) -> None:
    r = client.post(**request_kwargs(sim, "aistudio", stream=False, model="ernie-4.5-21b-a3b"))
    body = r.json()
    assert r.status_code == 200 and body["model"] == "ernie-4.5-21b-a3b"
    assert body["choices"][0]["message"]["content"] == "你好！You said: hi"
    assert body["choices"][0]["finish_reason"] == "normal"
    assert sim.chat_requests[-1].path == "/llm/lmapi/v3/chat/completions"


def test_v2_reasoning_chunks_come_before_text(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.set_answer(text="结论", reasoning="先想想", chunk_size=2)
    objs = data_objects(stream_lines(client, sim, "qianfan"))[:-1]
    deltas = [o["choices"][0]["delta"] for o in objs]
    assert [d.get("reasoning_content") for d in deltas] == ["先想", "想", None]
    assert text_of(objs) == "结论"


def test_v2_safety_and_search_fields(sim: ErnieSimulator, client: httpx2.Client) -> None:
    results = [{"index": 1, "url": "https://example.com", "title": "t"}]
    sim.set_answer(
        text="abcdef", chunk_size=3, flag=4, ban_round=-1, need_clear_history=True, search_results=results
    )
    first, last, done = data_objects(stream_lines(client, sim, "qianfan"))
    assert done == "[DONE]"
    assert first["search_results"] == results and last["search_results"] == results
    assert first["choices"][0]["flag"] == 0  # the text was shown before the withdraw signal
    assert last["choices"][0]["flag"] == 4
    assert last["choices"][0]["ban_round"] == -1
    assert last["choices"][0]["need_clear_history"] is True


def test_v2_missing_bearer_is_401_with_error_shape(sim: ErnieSimulator, client: httpx2.Client) -> None:
    r = client.post(chat_url(sim, "qianfan"), json={"model": "m", "messages": HI})
    assert r.status_code == 401
    body = r.json()
    assert body["error"]["code"] == "invalid_iam_token" and body["id"].startswith("as-")
    assert set(body["error"]) == {"code", "message", "type"}


def test_v2_blank_last_message_is_invalid_messages(sim: ErnieSimulator, client: httpx2.Client) -> None:
    r = client.post(
        **request_kwargs(sim, "qianfan", stream=False, messages=[{"role": "user", "content": " \n"}])
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_messages"


def test_openai_stream_role_chunk_trailing_space_and_stop(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.set_answer(text="hello", chunk_size=2)
    with client.stream("POST", chat_url(sim, "openai"), json={"messages": HI, "stream": True}) as r:
        raw = r.read().decode()
    first_event = raw.split("\n\n")[0]
    assert first_event.endswith("} "), "FastDeploy puts a space after the first chunk's JSON"
    objs = data_objects([line for line in raw.split("\n") if line])
    assert objs[0]["choices"][0]["delta"]["role"] == "assistant"
    assert objs[-1] == "[DONE]"
    assert text_of(objs[1:-1]) == "hello"
    assert objs[-2]["choices"][0]["finish_reason"] == "stop"
    assert objs[1]["id"].startswith("chatcmpl-")


def test_openai_non_stream_and_models(sim: ErnieSimulator, client: httpx2.Client) -> None:
    r = client.post(chat_url(sim, "openai"), json={"model": "ernie-4.5-0.3b", "messages": HI})
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["model"] == "ernie-4.5-0.3b"
    models = client.get(sim.url + "/v1/models").json()
    assert [m["id"] for m in models["data"]] == sim.models


def test_openai_key_is_enforced_only_when_configured(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.openai_api_key = "sk-local"
    r = client.post(chat_url(sim, "openai"), json={"messages": HI})
    assert r.status_code == 401 and r.json()["error"] == {
        "code": 401,
        "message": "Invalid API Key",
        "type": "authentication_error",
    }
    ok = client.post(
        chat_url(sim, "openai"), json={"messages": HI}, headers={"Authorization": "Bearer sk-local"}
    )
    assert ok.status_code == 200


# -- Qianfan v1: OAuth, token checks, validation --------------------------------------------------------------


def oauth(client: httpx2.Client, sim: ErnieSimulator, secret: str = "sk", method: str = "POST") -> Any:
    params = {"grant_type": "client_credentials", "client_id": "ak", "client_secret": secret}
    r = client.request(method, sim.url + "/oauth/2.0/token", params=params)
    assert r.status_code == 200
    return r.json()


def test_v1_oauth_issues_fresh_tokens_and_streams_until_is_end(
    sim: ErnieSimulator, client: httpx2.Client
) -> None:
    token = oauth(client, sim)
    assert token["access_token"].startswith("24.") and token["expires_in"] == 2592000
    assert oauth(client, sim, method="GET")["access_token"] != token["access_token"]
    sim.set_answer(text="你好！有什么可以帮你", chunk_size=5)
    with client.stream(
        "POST",
        sim.url + V1_CHAT,
        params={"access_token": token["access_token"]},
        json={"messages": HI, "stream": True, "system": "你是助手"},
    ) as r:
        objs = data_objects([line for line in r.iter_lines() if line])
    assert "[DONE]" not in objs
    assert [o["is_end"] for o in objs] == [False, True]
    assert [o["sentence_id"] for o in objs] == [0, 1]
    assert "".join(o["result"] for o in objs) == "你好！有什么可以帮你"
    assert all("usage" in o for o in objs)
    assert objs[-1]["usage"]["completion_tokens"] == 10
    rec = sim.chat_requests[-1]
    assert rec.surface == "qianfan-v1" and rec.system == "你是助手" and rec.model == "ernie-speed-128k"
    assert [r.surface for r in sim.requests] == ["oauth", "oauth", "qianfan-v1"]


def test_v1_oauth_rejects_bad_secret_and_unknown_grant(sim: ErnieSimulator, client: httpx2.Client) -> None:
    assert oauth(client, sim, secret="bad-secret") == {
        "error_description": "Client authentication failed",
        "error": "invalid_client",
    }
    r = client.post(sim.url + "/oauth/2.0/token", params={"grant_type": "password", "client_id": "ak"})
    assert r.status_code == 200 and r.json()["error_description"] == "unknown client id"


def test_v1_unknown_token_is_110_and_expired_token_is_111(sim: ErnieSimulator, client: httpx2.Client) -> None:
    body = {"messages": HI}
    r = client.post(sim.url + V1_CHAT, params={"access_token": "24.forged"}, json=body)
    assert r.status_code == 200 and r.json()["error_code"] == 110
    assert client.post(sim.url + V1_CHAT, json=body).json()["error_code"] == 110
    token = oauth(client, sim)["access_token"]
    assert client.post(sim.url + V1_CHAT, params={"access_token": token}, json=body).json()["result"]
    sim.expire_tokens()
    r = client.post(sim.url + V1_CHAT, params={"access_token": token}, json=body)
    assert r.json() == {"error_code": 111, "error_msg": "Access token expired"}
    fresh = oauth(client, sim)["access_token"]
    assert "result" in client.post(sim.url + V1_CHAT, params={"access_token": fresh}, json=body).json()


def test_v1_auth_failures_do_not_consume_scripts(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.push(Answer(text="scripted"))
    client.post(sim.url + V1_CHAT, params={"access_token": "24.forged"}, json={"messages": HI})
    assert sim.pending == 1
    ok = client.post(**request_kwargs(sim, "qianfan-v1", stream=False))
    assert ok.json()["result"] == "scripted" and sim.pending == 0


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            "the length of messages must be an odd number",
        ),
        (
            [
                {"role": "system", "content": "s"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ],
            "invalid role in message 0",
        ),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "user", "content": "c"},
            ],
            "invalid role in message 1",
        ),
    ],
)
def test_v1_message_validation_is_html_336003_even_when_streaming(
    sim: ErnieSimulator, client: httpx2.Client, messages: list[dict[str, str]], message: str
) -> None:
    with client.stream("POST", **request_kwargs(sim, "qianfan-v1", stream=True, messages=messages)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert json.loads(r.read()) == {"error_code": 336003, "error_msg": message}


def test_v1_non_stream_body(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.set_answer(text="大气中最丰富的气体是氮气", is_truncated=True)
    body = client.post(**request_kwargs(sim, "qianfan-v1", stream=False)).json()
    assert body["result"] == "大气中最丰富的气体是氮气"
    assert body["is_truncated"] is True and body["need_clear_history"] is False
    assert body["object"] == "chat.completion" and body["id"].startswith("as-")


# -- scripted errors ----------------------------------------------------------------------------------------


def test_status_fault_uses_each_surface_error_shape(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.push(Fault.status(429, retry_after=1), Fault.status(500), Fault.status(429), Fault.status(503))
    r = client.post(**request_kwargs(sim, "qianfan", stream=True))
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.json()["error"] == {
        "code": "rpm_rate_limit_exceeded",
        "message": "Rate limit reached for RPM",
        "type": "rate_limit_exceeded",
    }
    assert (
        client.post(**request_kwargs(sim, "aistudio", stream=False)).json()["error"]["code"]
        == "internal_error"
    )
    r = client.post(**request_kwargs(sim, "qianfan-v1", stream=False))
    assert r.status_code == 429 and r.json()["error_code"] == 336501
    r = client.post(chat_url(sim, "openai"), json={"messages": HI})
    assert r.status_code == 503 and r.json()["error"]["type"] == "unavailable_error"
    assert "retry-after" not in r.headers
    assert client.post(**request_kwargs(sim, "qianfan", stream=False)).status_code == 200  # one-shot


def test_status_fault_with_custom_body_and_headers(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.push(Fault.status(403, body={"error": {"code": "user_setting_unsafe"}}, headers={"X-Extra": "1"}))
    r = client.post(**request_kwargs(sim, "qianfan", stream=False))
    assert r.status_code == 403 and r.headers["x-extra"] == "1"
    assert r.json() == {"error": {"code": "user_setting_unsafe"}}


def test_error_in_200(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.push(
        Fault.error_in_200(),
        Fault.error_in_200(code="tpm_rate_limit_exceeded"),
        Fault.error_in_200(style="code_msg"),
    )
    r = client.post(**request_kwargs(sim, "qianfan-v1", stream=True))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error_code"] == 336100
    body = client.post(**request_kwargs(sim, "qianfan", stream=True)).json()
    assert (
        body["error"]["code"] == "tpm_rate_limit_exceeded" and body["error"]["type"] == "rate_limit_exceeded"
    )
    assert client.post(**request_kwargs(sim, "qianfan", stream=False)).json() == {
        "code": "rpm_rate_limit_exceeded",
        "msg": "Rate limit reached for RPM",
    }


def test_scripted_codes_carry_their_own_messages(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.push(Fault.error_in_200(code=19), Fault.error_in_200(code="tpm_rate_limit_exceeded"))
    assert client.post(**request_kwargs(sim, "qianfan-v1", stream=False)).json() == {
        "error_code": 19,
        "error_msg": "Open api total request limit reached",
    }
    err = client.post(**request_kwargs(sim, "qianfan", stream=False)).json()["error"]
    assert err["message"] == "Rate limit reached for TPM"


def test_error_midstream_v1_is_a_bare_json_line(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.push(Fault.error_midstream(after_chunks=2, code=336100, message="high load"))
    lines = stream_lines(client, sim, "qianfan-v1")
    assert len(lines) == 3 and all(line.startswith("data: ") for line in lines[:2])
    assert json.loads(lines[2]) == {"error_code": 336100, "error_msg": "high load"}
    assert not any(json.loads(line[6:])["is_end"] for line in lines[:2])


@pytest.mark.parametrize(("surface", "style"), [("qianfan", None), ("openai", None), ("openai", "llamacpp")])
def test_error_midstream_openai_styles(
    sim: ErnieSimulator, client: httpx2.Client, surface: str, style: str | None
) -> None:
    sim.push(Fault.error_midstream(after_chunks=1, style=style))
    lines = stream_lines(client, sim, surface)
    assert lines[-1] == "data: [DONE]"
    err_line = lines[-2]
    if style == "llamacpp":
        assert err_line.startswith("error: ")
        assert json.loads(err_line[len("error: ") :])["type"] == "server_error"
    else:
        assert "error" in json.loads(err_line[len("data: ") :])
    assert sim.chat_requests[-1].chunks_sent == 1


# -- broken streams -------------------------------------------------------------------------------------------


def test_cut_looks_like_a_protocol_error(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.push(Fault.cut(after_chunks=2, answer=Answer(text="abcdefghijkl", chunk_size=2)))
    seen: list[str] = []
    with (
        pytest.raises(httpx2.RemoteProtocolError),
        client.stream("POST", **request_kwargs(sim, "qianfan", stream=True)) as r,
    ):
        seen.extend(line for line in r.iter_lines() if line)
    assert text_of(data_objects(seen)) == "abcd"
    rec = sim.chat_requests[-1]
    assert rec.chunks_sent == 2 and not rec.disconnected


def test_non_stream_cut_is_an_incomplete_body(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.push(Fault.cut())
    with pytest.raises(httpx2.RemoteProtocolError):
        client.post(**request_kwargs(sim, "qianfan", stream=False))


def test_stall_is_detected_by_a_read_timeout_and_the_disconnect_recorded(
    sim: ErnieSimulator, client: httpx2.Client
) -> None:
    sim.push(Fault.stall(after_chunks=1, seconds=30))
    seen: list[str] = []
    t0 = time.monotonic()
    with (
        pytest.raises(httpx2.ReadTimeout),
        client.stream(
            "POST", **request_kwargs(sim, "qianfan", stream=True), timeout=httpx2.Timeout(5, read=0.3)
        ) as r,
    ):
        seen.extend(line for line in r.iter_lines() if line)
    closed_at = time.monotonic()
    assert closed_at - t0 < 3
    assert len(seen) == 1
    rec = sim.chat_requests[-1]
    assert sim.wait_for(lambda: rec.disconnected and rec.finished, timeout=1.0)
    assert rec.finished is not None and rec.finished - closed_at < 1.0
    assert sim.wait_for(lambda: sim.in_flight == 0, timeout=1.0)


def test_stall_with_heartbeat_sends_keep_alive_comments_then_closes(
    sim: ErnieSimulator, client: httpx2.Client
) -> None:
    sim.push(Fault.stall(after_chunks=1, seconds=0.35, heartbeat=0.1))
    lines: list[str] = []
    with (
        pytest.raises(httpx2.RemoteProtocolError),
        client.stream("POST", **request_kwargs(sim, "qianfan", stream=True)) as r,
    ):
        lines.extend(line for line in r.iter_lines() if line)
    assert lines[0].startswith("data: ")
    assert lines[1:] and all(line == ": keep-alive" for line in lines[1:])


def test_stop_ends_a_stall_promptly(client: httpx2.Client) -> None:
    sim = ErnieSimulator().start()
    sim.push(Fault.stall(after_chunks=0, seconds=60))
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            with client.stream("POST", **request_kwargs(sim, "qianfan", stream=True)) as r:
                for _ in r.iter_lines():
                    pass
        except httpx2.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=consume)
    t.start()
    assert sim.wait_for(lambda: sim.in_flight == 1)
    t0 = time.monotonic()
    sim.stop()
    t.join(2)
    assert time.monotonic() - t0 < 1.5 and not t.is_alive()
    assert errors and isinstance(errors[0], httpx2.RemoteProtocolError)


def test_malformed_event_then_the_stream_goes_on(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.push(Fault.malformed(after_chunks=1))
    lines = stream_lines(client, sim, "qianfan")
    assert lines[1] == 'data: {"choices": ['
    assert lines[-1] == "data: [DONE]"


def test_oversized_event_is_bigger_than_one_mib(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.push(Fault.oversized(after_chunks=1, size=1024 * 1024 + 10))
    lines = stream_lines(client, sim, "openai")
    big = [line for line in lines if len(line) > 1024 * 1024]
    assert len(big) == 1
    assert json.loads(big[0][6:])["choices"][0]["delta"]["content"] == "x" * (1024 * 1024 + 10)
    assert lines[-1] == "data: [DONE]"


def test_endless_stream_stops_when_the_client_disconnects(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.push(Fault.endless(interval=0.002))
    with client.stream("POST", **request_kwargs(sim, "qianfan-v1", stream=True)) as r:
        lines = r.iter_lines()
        got = [next(lines) for _ in range(40)]
    closed_at = time.monotonic()
    assert sum(1 for line in got if line.startswith("data: ")) == 20
    rec = sim.chat_requests[-1]
    assert sim.wait_for(lambda: rec.disconnected and rec.finished, timeout=1.0)
    assert rec.finished is not None and rec.finished - closed_at < 1.0
    sent = rec.chunks_sent
    time.sleep(0.05)
    assert rec.chunks_sent == sent, "no writes after the disconnect"


def test_no_end_finishes_the_body_without_done_or_is_end(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.push(
        Fault.no_end(after_chunks=2, answer=Answer(text="abcd", chunk_size=2)), Fault.no_end(after_chunks=1)
    )
    objs = data_objects(stream_lines(client, sim, "qianfan"))
    assert len(objs) == 2 and "[DONE]" not in objs
    assert all(o["choices"][0]["finish_reason"] is None for o in objs)
    v1 = data_objects(stream_lines(client, sim, "qianfan-v1"))
    assert len(v1) == 1 and v1[0]["is_end"] is False


# -- byte-level behaviour --------------------------------------------------------------------------------------


def test_split_utf8_writes_pieces_that_end_mid_character(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.set_answer(text="你好世界朋友们", chunk_size=3, split_utf8=True)
    pieces: list[bytes] = []
    with client.stream("POST", **request_kwargs(sim, "qianfan-v1", stream=True)) as r:
        pieces.extend(r.iter_raw())
    rec = sim.chat_requests[-1]
    assert rec.split_mid_char
    assert rec.writes > len(rec.events) == 3
    assert len(pieces) > 3, "reads arrive apart"

    def decodes(b: bytes) -> bool:
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    assert not all(decodes(p) for p in pieces)
    whole = b"".join(pieces).decode()
    assert "".join(json.loads(line[6:])["result"] for line in whole.split("\n") if line) == "你好世界朋友们"


def test_gzip_only_when_the_client_accepts_it(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.set_answer(text="压缩的流式回答" * 3, chunk_size=5, gzip=True, delay=0.001)
    with client.stream("POST", **request_kwargs(sim, "qianfan", stream=True)) as r:
        assert r.headers["content-encoding"] == "gzip"
        raw = b"".join(r.iter_raw())
    text = gzip.decompress(raw).decode()
    assert text.endswith("data: [DONE]\n\n")
    assert text_of(data_objects([line for line in text.split("\n") if line])) == "压缩的流式回答" * 3
    kwargs = request_kwargs(sim, "qianfan", stream=True)
    kwargs["headers"]["Accept-Encoding"] = "identity"
    with client.stream("POST", **kwargs) as r:
        assert "content-encoding" not in r.headers
        assert b"".join(r.iter_raw()).endswith(b"data: [DONE]\n\n")


def test_crlf_line_endings(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.set_answer(text="abc", crlf=True)
    with client.stream("POST", **request_kwargs(sim, "qianfan", stream=True)) as r:
        raw = r.read()
    assert raw.endswith(b"data: [DONE]\r\n\r\n") and b"\n\n" not in raw.replace(b"\r\n\r\n", b"")


def test_heartbeat_comments_between_chunks(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.set_answer(text="abcdef", chunk_size=2, heartbeat=True)
    lines = stream_lines(client, sim, "qianfan")
    assert lines.count(": keep-alive") == 2


def test_delay_spreads_chunks_over_time(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.set_answer(text="abcdef", chunk_size=1, delay=0.03)
    arrivals = []
    with client.stream("POST", **request_kwargs(sim, "openai", stream=True)) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and '"content": "' in line and '"role"' not in line:
                arrivals.append(time.monotonic())
    assert len(arrivals) == 6
    assert arrivals[-1] - arrivals[0] >= 0.1


def test_raw_socket_keep_alive_chunked_stream_then_content_length_json(sim: ErnieSimulator) -> None:
    body = json.dumps({"model": "m", "messages": HI, "stream": True}).encode()
    head = (
        f"POST /v2/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    plain = json.dumps({"model": "m", "messages": HI}).encode()
    head2 = (
        f"POST /v2/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nConnection: close\r\n"
        f"Content-Length: {len(plain)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
        s.sendall(head + body)
        s.sendall(head2 + plain)  # second request on the same connection
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    first, _, rest = data.partition(b"0\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in first and b"data: [DONE]" in first
    assert rest.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: " in rest
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["object"] == "chat.completion"
    assert len(sim.chat_requests) == 2


def test_unknown_path_is_404_and_not_a_chat_request(sim: ErnieSimulator, client: httpx2.Client) -> None:
    assert client.post(sim.url + "/v9/nothing", json={}).status_code == 404
    assert sim.requests == [] and sim.all_requests[-1].surface == "unknown"


# -- concurrency and bookkeeping ------------------------------------------------------------------------------


def test_peak_in_flight_counts_concurrent_requests(sim: ErnieSimulator) -> None:
    sim.latency = 0.2

    def one() -> None:
        with httpx2.Client(timeout=5) as c:
            assert c.post(**request_kwargs(sim, "qianfan", stream=False)).status_code == 200

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    assert sim.wait_for(lambda: sim.in_flight == 4, timeout=2)
    for t in threads:
        t.join()
    # The client can read the last byte before the server's handler has unwound, so wait for the count.
    assert sim.wait_for(lambda: sim.in_flight == 0, timeout=2)
    assert sim.peak_in_flight == 4
    sim.clear()
    assert sim.peak_in_flight == 0 and sim.requests == []


def test_push_scripts_are_consumed_fifo_then_default(sim: ErnieSimulator, client: httpx2.Client) -> None:
    sim.set_answer(text="default")
    sim.push(Answer(text="one"), Answer(text="two", model="ernie-x1-turbo-32k"))
    got = [client.post(**request_kwargs(sim, "qianfan", stream=False)).json() for _ in range(3)]
    assert [g["choices"][0]["message"]["content"] for g in got] == ["one", "two", "default"]
    assert got[1]["model"] == "ernie-x1-turbo-32k"


def test_env_and_base_urls(sim: ErnieSimulator) -> None:
    assert sim.base_url("qianfan") == sim.url + "/v2"
    assert sim.base_url("qianfan-v1") == sim.url
    assert sim.env("aistudio")["AISTUDIO_BASE_URL"] == sim.url + "/llm/lmapi/v3"
    assert sim.env("openai") == {"ERNIE_PROVIDER": "openai", "ERNIE_BASE_URL": sim.url + "/v1"}
    v1 = sim.env("qianfan-v1")
    assert set(v1) == {"ERNIE_PROVIDER", "QIANFAN_AK", "QIANFAN_SK", "QIANFAN_V1_BASE_URL"}
    assert sim.env("qianfan", api_key="bce-v3/k")["QIANFAN_API_KEY"] == "bce-v3/k"


def test_python_dash_m_entry_point_serves_until_sigterm(client: httpx2.Client) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ernie_widget.testing", "--port", "0", "--latency", "0.01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("ERNIE_SIMULATOR_URL=http://127.0.0.1:")
        url = first.split("=", 1)[1]
        r = client.post(url + "/v1/chat/completions", json={"messages": HI})
        assert r.json()["choices"][0]["message"]["content"] == "你好！You said: hi"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
