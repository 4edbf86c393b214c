"""Batch rows over aiohttp (the default when it is installed) and over httpx2: the same answers, the same
errors, the same cleanup. Real sockets against the protocol simulator."""

from __future__ import annotations

import asyncio
import socket

import pytest

from ernie_widget.client import APIConnectionError, APITimeoutError, AsyncErnie, Ernie, IncompleteStreamError
from ernie_widget.testing import Answer, ErnieSimulator, Fault, echo_answer

KEY = "bce-v3/ALTAK-transport/very-secret-value"
TRANSPORTS = ["aiohttp", "httpx2"]


def make_client(sim: ErnieSimulator, **kwargs: object) -> Ernie:
    return Ernie("qianfan", api_key=KEY, base_url=sim.base_url("qianfan"), **kwargs)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_aiohttp_is_what_a_batch_uses_by_default(ernie_simulator):
    with make_client(ernie_simulator) as client:
        client.map(["一", "二"], progress=False)
        client.map(["三"], progress=False, transport="httpx2")
    agents = [r.headers.get("user-agent", "") for r in ernie_simulator.chat_requests]
    # aiohttp adds no User-Agent of its own beside ours, and httpx2's is the client's default header
    assert agents == ["ernie-widget/0.1"] * 3
    # and the two stacks really are different: httpx2 sends the client's Accept-Encoding, aiohttp its own
    encodings = [r.headers.get("accept-encoding") for r in ernie_simulator.chat_requests]
    assert encodings[2] == "gzip"
    assert encodings[0] == encodings[1] and "gzip" in encodings[0] and "deflate" in encodings[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_both_transports_give_the_same_rows(ernie_simulator, transport):
    prompts = [f"第 {i} 行：你好 🌏" for i in range(20)]
    with make_client(ernie_simulator) as client:
        result = client.map(prompts, concurrency=6, progress=False, transport=transport, temperature=0.3)
    assert result.texts == [echo_answer(p) for p in prompts]
    assert all(r.usage is not None and r.usage.total_tokens > 0 for r in result)
    bodies = [r.json for r in ernie_simulator.chat_requests]
    assert all(not b.get("stream") and b["temperature"] == 0.3 for b in bodies)
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in ernie_simulator.chat_requests)
    # connections are reused: no more than the concurrency were opened
    assert len({r.connection for r in ernie_simulator.chat_requests}) <= 6


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_gzip_answers_are_decoded(ernie_simulator, transport):
    ernie_simulator.push(Answer(text="压缩过的回答", gzip=True))
    with make_client(ernie_simulator) as client:
        result = client.map(["q"], progress=False, transport=transport)
    assert result.texts == ["压缩过的回答"]
    assert "gzip" in ernie_simulator.chat_requests[0].headers.get("accept-encoding", "")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_refused_connection_is_a_connection_error_without_the_key(transport):
    url = f"http://127.0.0.1:{closed_port()}/v2"
    with Ernie("qianfan", api_key=KEY, base_url=url, max_retries=0) as client:
        result = client.map(["q"], progress=False, transport=transport, row_retries=0)
    err = result.errors[0]
    assert isinstance(err, APIConnectionError)
    assert "无法连接" in str(err) and "could not connect" in str(err)
    assert "very-secret-value" not in str(err) and "very-secret-value" not in repr(err)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_answer_slower_than_the_limit_times_out(ernie_simulator, transport):
    ernie_simulator.latency = 2.0
    with make_client(ernie_simulator, timeout=0.3, max_stream_seconds=0.5, max_retries=0) as client:
        result = client.map(["q"], progress=False, transport=transport, row_retries=0)
    assert isinstance(result.errors[0], APITimeoutError)
    # the abandoned request's connection was closed, so the server saw the client go
    assert ernie_simulator.wait_for(lambda: ernie_simulator.in_flight == 0, timeout=3)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_body_cut_mid_way_is_retried_and_then_succeeds(ernie_simulator, transport):
    ernie_simulator.push(Fault.cut(), Fault.status(503))
    with make_client(ernie_simulator, max_retries=0) as client:
        result = client.map(["只有一行"], progress=False, transport=transport, row_retries=2)
    assert result.texts == [echo_answer("只有一行")]
    assert len(ernie_simulator.chat_requests) == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_cut_body_that_never_recovers_is_an_incomplete_answer(ernie_simulator, transport):
    ernie_simulator.push(Fault.cut())
    with make_client(ernie_simulator, max_retries=0) as client:
        result = client.map(["q"], progress=False, transport=transport, row_retries=0)
    assert isinstance(result.errors[0], (IncompleteStreamError, APIConnectionError))
    assert "very-secret-value" not in str(result.errors[0])


def test_the_environment_proxy_is_used_and_no_proxy_bypasses_it(ernie_simulator, monkeypatch):
    # a proxy nobody listens on: a row that goes through it fails to connect, a bypassed row succeeds
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "example.invalid")
    monkeypatch.delenv("no_proxy", raising=False)
    with make_client(ernie_simulator, max_retries=0) as client:
        through_proxy = client.map(["q"], progress=False, transport="aiohttp", row_retries=0)
    assert isinstance(through_proxy.errors[0], APIConnectionError)
    assert ernie_simulator.chat_requests == []

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with make_client(ernie_simulator, max_retries=0) as client:
        bypassed = client.map(["q"], progress=False, transport="aiohttp", row_retries=0)
    assert bypassed.texts == [echo_answer("q")]


def test_the_async_twin_closes_its_aiohttp_session(ernie_simulator):
    import gc
    import warnings

    async def main() -> list[str | None]:
        async with AsyncErnie("qianfan", api_key=KEY, base_url=ernie_simulator.base_url("qianfan")) as client:
            result = await client.map(["a", "b", "c"], concurrency=2, progress=False, transport="aiohttp")
        return result.texts

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        texts = asyncio.run(main())
        gc.collect()
    assert texts == [echo_answer(p) for p in "abc"]
    assert ernie_simulator.wait_for(lambda: ernie_simulator.in_flight == 0, timeout=2)


def test_a_bad_transport_name_fails_before_anything_is_sent(ernie_simulator):
    with make_client(ernie_simulator) as client, pytest.raises(ValueError, match="transport must be"):
        client.map(["q"], progress=False, transport="curl")  # type: ignore[arg-type]
    assert ernie_simulator.chat_requests == []


@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1"])
def test_a_failed_rows_traceback_with_locals_shows_no_key_or_token(ernie_simulator, provider):
    import traceback

    if provider == "qianfan":
        client = make_client(ernie_simulator, max_retries=0)
    else:
        client = Ernie("qianfan-v1", api_key="ak-transport", secret_key="sk-very-secret-value",
                       base_url=ernie_simulator.base_url("qianfan-v1"), max_retries=0)
    ernie_simulator.push(Fault.status(500), Fault.cut())
    with client:
        result = client.map(["a", "b"], concurrency=1, progress=False, transport="aiohttp", row_retries=0)
    tokens = list(ernie_simulator._tokens)  # the v1 access tokens the simulator issued to this client
    assert len(result.errors) == 2
    assert provider == "qianfan" or tokens  # v1 did get a token, which rides in every chat URL
    for err in result.errors.values():
        shown = "".join(traceback.TracebackException.from_exception(err, capture_locals=True).format())
        assert "Traceback" in shown
        for secret in ["very-secret-value", *tokens]:
            assert secret not in shown and secret not in repr(err)
