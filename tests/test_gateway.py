"""The gateway's OpenAI-compatible HTTP API, on real uvicorn in front of the simulator.

Clients: our own `Ernie(provider="openai")`, the openai SDK, and raw HTTP where the bytes matter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ernie_widget.client import AsyncErnie, AuthenticationError, Ernie, RateLimitError, ServerError
from ernie_widget.gateway.accesslog import ACCESS_LOGGER
from ernie_widget.gateway.testing import gateway_for
from ernie_widget.testing import Answer, ErnieSimulator, Fault, echo_answer

pytestmark = pytest.mark.timeout(60)

# one client for the whole module: HTTP.post() would build a new SSL context (~50 ms) every call
HTTP = httpx.Client(timeout=30)


def _client(gw, **kw) -> Ernie:  # type: ignore[no-untyped-def]
    return Ernie(provider="openai", base_url=gw.url + "/v1", max_retries=0, **kw)


def _metrics(gw) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    out = {}
    for fam in text_string_to_metric_families(HTTP.get(gw.url + "/metrics").text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_log():  # type: ignore[no-untyped-def]
    handler = _Lines()
    log = logging.getLogger(ACCESS_LOGGER)
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler.lines
    log.removeHandler(handler)
    log.setLevel(old_level)


def test_our_client_streams_text_reasoning_and_usage_through_the_gateway(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.set_answer(text="你好，世界！Hello", reasoning="先想一想。", chunk_size=3)
    with gateway_for(ernie_simulator) as gw:
        events = list(_client(gw).stream("hi"))
    text = "".join(e.text for e in events if e.type == "text")
    reasoning = "".join(e.text for e in events if e.type == "reasoning")
    assert text == "你好，世界！Hello"
    assert reasoning == "先想一想。"
    usage = next(e.usage for e in events if e.type == "usage")
    upstream = ernie_simulator.chat_requests[-1]
    assert upstream.surface == "qianfan"  # an ERNIE v2 upstream, served as OpenAI
    assert usage is not None and usage.completion_tokens == len("你好，世界！Hello") + len("先想一想。")
    assert events[-1].type == "finish" and events[-1].finish_reason == "stop"


@pytest.mark.parametrize("transport", ["aiohttp", "httpx2"])
def test_both_upstream_transports_relay_the_same_stream(ernie_simulator: ErnieSimulator, transport: str) -> None:
    # split UTF-8 across writes and a gzip answer: the hard parts of reading upstream
    ernie_simulator.push(Answer(text="长回答：" + "文心一言" * 200, chunk_size=7, split_utf8=True),
                         Answer(text="压缩的流", gzip=True))
    with gateway_for(ernie_simulator, upstream_transport=transport) as gw:
        client = _client(gw)
        first = "".join(e.text for e in client.stream("a") if e.type == "text")
        second = "".join(e.text for e in client.stream("b") if e.type == "text")
    assert first == "长回答：" + "文心一言" * 200
    assert second == "压缩的流"
    encodings = {r.headers.get("accept-encoding") for r in ernie_simulator.chat_requests}
    # httpx2 sends the client's "gzip"; aiohttp its own list (the default `auto` picks aiohttp)
    assert encodings == ({"gzip"} if transport == "httpx2" else {next(iter(encodings))})
    assert transport == "httpx2" or "deflate" in next(iter(encodings))
    assert all(r.connection == ernie_simulator.chat_requests[0].connection for r in ernie_simulator.chat_requests)


def test_our_client_unstreamed_chat_gets_the_whole_reply(ernie_simulator: ErnieSimulator) -> None:
    with gateway_for(ernie_simulator) as gw:
        reply = _client(gw).chat("ping", temperature=0.5, max_tokens=64)
    assert reply.text == echo_answer("ping")
    assert reply.usage is not None and reply.usage.total_tokens > 0
    sent = ernie_simulator.chat_requests[-1].json
    assert sent["temperature"] == 0.5 and sent["max_completion_tokens" if "max_completion_tokens" in sent
                                                else "max_tokens"] == 64


def test_the_openai_sdk_works_unchanged(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.set_answer(text="SDK 你好", reasoning="hm", chunk_size=2)
    with gateway_for(ernie_simulator) as gw:
        sdk = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
        full = sdk.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}])
        assert full.choices[0].message.content == "SDK 你好"
        assert full.choices[0].finish_reason == "stop"
        assert full.usage is not None and full.usage.completion_tokens == 8
        assert json.loads(full.model_dump_json())["choices"][0]["message"]["reasoning_content"] == "hm"
        chunks = list(sdk.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}],
                                                  stream=True, stream_options={"include_usage": True}))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "SDK 你好"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_usage_chunk_only_when_asked_and_the_stream_ends_with_done(ernie_simulator: ErnieSimulator) -> None:
    with gateway_for(ernie_simulator) as gw:
        r = HTTP.post(gw.url + "/v1/chat/completions",
                       json={"model": "default", "stream": True, "messages": [{"role": "user", "content": "a"}]})
    events = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert r.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    assert not any("usage" in json.loads(e) for e in events[:-1])


def test_the_fast_chunk_encoder_writes_the_same_bytes_as_the_plain_one() -> None:
    from ernie_widget.gateway.http_chat import _Encoder
    from ernie_widget.gateway.items import Item
    from ernie_widget.gateway.openai_wire import ChatRequest, chunk_bytes

    req = ChatRequest([{"role": "user", "content": "x"}])
    enc = _Encoder(req, "m1")
    assert b'"role":"assistant"' in enc.encode(Item("text", text="first"))
    for text in ('你好 "quoted" \\ back\nslash', "</script>", "\u2028"):
        for kind, field in (("text", "content"), ("reasoning", "reasoning_content")):
            assert enc.encode(Item(kind, text=text)) == chunk_bytes(req, "m1", {field: text})
    assert enc.encode(Item("text", text="x", model="m2")) == chunk_bytes(req, "m2", {"content": "x"})


def test_upstream_error_before_the_first_token_keeps_its_status(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.push(Fault.status(429, retry_after=7), Fault.status(500))
    with gateway_for(ernie_simulator) as gw:
        client = _client(gw)
        with pytest.raises(RateLimitError) as rl:
            client.chat("hi")
        assert rl.value.status_code == 429 and rl.value.retry_after == 7
        r = HTTP.post(gw.url + "/v1/chat/completions",
                       json={"model": "default", "stream": True, "messages": [{"role": "user", "content": "a"}]})
    assert r.status_code == 502
    body = r.json()
    assert body["error"]["code"] == "upstream_server_error" and body["error"]["type"] == "server_error"


def test_upstream_bad_request_is_a_400_for_the_sdk(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.push(Fault.status(400))
    with gateway_for(ernie_simulator) as gw:
        sdk = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.BadRequestError):
            sdk.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}], stream=True)


def test_an_error_mid_stream_is_an_error_event(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.push(Fault.error_midstream(after_chunks=2, code="internal_error", message="boom",
                                               answer=Answer(text="abcdefghijkl", chunk_size=2)))
    with gateway_for(ernie_simulator) as gw:
        with pytest.raises(ServerError) as err:
            list(_client(gw).stream("hi"))
        assert err.value.partial_text == "abcd"
        ernie_simulator.push(Fault.error_midstream(after_chunks=1, code="internal_error", message="boom"))
        r = HTTP.post(gw.url + "/v1/chat/completions",
                       json={"stream": True, "messages": [{"role": "user", "content": "a"}]})
    assert r.status_code == 200
    data = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert "error" in json.loads(data[-2]) and data[-1] == "[DONE]"
    assert json.loads(data[-2])["error"]["code"] == "upstream_server_error"


def test_sse_heartbeat_comments_while_upstream_is_quiet(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.set_answer(text="abc", chunk_size=1, delay=0.25)
    with gateway_for(ernie_simulator, heartbeat=0.1) as gw:
        r = HTTP.post(gw.url + "/v1/chat/completions",
                       json={"stream": True, "messages": [{"role": "user", "content": "a"}]})
        reply = _client(gw).chat("again")  # comments are invisible to clients
    assert r.text.count(": keep-alive") >= 5
    assert reply.text == "abc"


def test_a_slow_first_token_still_gets_heartbeats(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.latency = 0.6  # nothing from upstream for 0.6 s
    with gateway_for(ernie_simulator, heartbeat=0.1) as gw:
        r = HTTP.post(gw.url + "/v1/chat/completions",
                      json={"stream": True, "messages": [{"role": "user", "content": "a"}]})
    assert r.status_code == 200
    before_first = r.text.split("data: ", 1)[0]
    assert before_first.count(": keep-alive") >= 3
    events = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and json.loads(events[-2])["choices"][0]["finish_reason"] == "stop"


def test_upstream_is_retried_before_the_first_token_only(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.push(Fault.status(503), Answer(text="second try"),
                         Fault.cut(after_chunks=2, answer=Answer(text="abcdefgh", chunk_size=2)))
    with gateway_for(ernie_simulator, max_retries=2) as gw:
        assert _client(gw).chat("hi").text == "second try"
        assert len(ernie_simulator.chat_requests) == 2
        with pytest.raises(ServerError) as err:  # cut after content: no retry, an error event
            _client(gw).chat("hi")
    assert err.value.partial_text == "abcd"
    assert len(ernie_simulator.chat_requests) == 3


def test_client_disconnect_cancels_the_upstream_request(ernie_simulator: ErnieSimulator, access_log) -> None:  # type: ignore[no-untyped-def]
    ernie_simulator.push(Fault.endless(interval=0.01))
    with gateway_for(ernie_simulator) as gw:
        with HTTP.stream("POST", gw.url + "/v1/chat/completions",
                          json={"stream": True, "messages": [{"role": "user", "content": "go"}]}) as r:
            seen = 0
            for line in r.iter_lines():
                if line.startswith("data: "):
                    seen += 1
                if seen == 3:
                    break
        upstream = ernie_simulator.chat_requests[-1]
        assert ernie_simulator.wait_for(lambda: upstream.disconnected, timeout=3)
        sent_at_close = upstream.chunks_sent
        assert ernie_simulator.wait_for(lambda: _metrics(gw)[("ernie_gateway_inflight_streams", ())] == 0, 3)
    assert sent_at_close < 500  # it did not keep streaming into the void
    line = json.loads(access_log[-1])
    assert line["status"] == 499 and line["error"] == "client_disconnected"


def test_disconnect_while_waiting_for_the_first_token_cancels_too(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.push(Fault.stall(after_chunks=0, seconds=20))
    with gateway_for(ernie_simulator) as gw, pytest.raises(httpx.ReadTimeout):
        HTTP.post(gw.url + "/v1/chat/completions", timeout=0.5,
                   json={"stream": True, "messages": [{"role": "user", "content": "go"}]})
    # the gateway stopped when the thread above closed its socket
    assert ernie_simulator.wait_for(lambda: ernie_simulator.chat_requests[-1].finished is not None, timeout=5)


def test_a_slow_consumer_is_disconnected_with_a_clear_error(ernie_simulator: ErnieSimulator) -> None:
    # ~8 MB of answer over ~7 s: more than the socket buffers can hold, and still streaming when the
    # gateway gives up on the client (its HTTP stack may read far ahead into its own buffers)
    ernie_simulator.set_answer(text="慢" * 2_700_000, chunk_size=4000, delay=0.01)
    with gateway_for(ernie_simulator, stream_buffer_bytes=64 * 1024) as gw:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", gw.port))
        body = json.dumps({"stream": True, "messages": [{"role": "user", "content": "go"}]}).encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        # not reading: the gateway must give up on us and cancel upstream, without buffering 8 MB
        assert ernie_simulator.wait_for(lambda: bool(ernie_simulator.chat_requests)
                                        and ernie_simulator.chat_requests[-1].disconnected, timeout=20)
        upstream = ernie_simulator.chat_requests[-1]
        assert upstream.chunks_sent < 675  # stopped well before the end of the answer
        # now read: what was already in flight, then the error event and [DONE]
        sock.settimeout(10)
        data = bytearray()
        while not data.endswith(b"\r\n0\r\n\r\n"):  # the last HTTP chunk: the response ended properly
            part = sock.recv(1 << 20)
            if not part:
                break
            data += part
        sock.close()
        tail = bytes(data[-2000:]).decode("utf-8", "replace")
        events = [line[6:] for line in tail.split("\n") if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and json.loads(events[-2])["error"]["code"] == "slow_consumer"
        assert _metrics(gw)[("ernie_gateway_errors_total", (("code", "slow_consumer"),))] == 1


def test_fifty_concurrent_streams(ernie_simulator: ErnieSimulator) -> None:
    ernie_simulator.set_answer(chunk_size=3, delay=0.01)
    with gateway_for(ernie_simulator) as gw:
        async def run() -> list[str]:
            client = AsyncErnie("openai", base_url=gw.url + "/v1", max_concurrency=64, max_retries=0)
            async def one(i: int) -> str:
                return (await client.chat(f"question {i}")).text
            try:
                return await asyncio.gather(*(one(i) for i in range(50)))
            finally:
                await client.aclose()
        t0 = time.monotonic()
        texts = asyncio.run(run())
        elapsed = time.monotonic() - t0
    assert texts == [echo_answer(f"question {i}") for i in range(50)]
    assert ernie_simulator.peak_in_flight >= 25  # they really ran side by side
    assert elapsed < 20


def test_metrics_count_what_was_sent(ernie_simulator: ErnieSimulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ernie_widget.gateway import KeyStore

    keys = KeyStore(tmp_path / "keys.db")
    key = keys.add("alice")
    with gateway_for(ernie_simulator, keys=keys) as gw:
        client = _client(gw, api_key=key)
        replies = [client.chat("one"), client.chat("two, a longer one")]
        replies += [Ernie(provider="openai", base_url=gw.url + "/v1", api_key=key).chat("three")]
        streamed = list(client.stream("four"))
        with pytest.raises(AuthenticationError):
            _client(gw, api_key="ewk_wrong").chat("nope")
        ernie_simulator.push(Fault.status(500))
        with pytest.raises(ServerError):
            client.chat("fails upstream")
        m = _metrics(gw)
    out_tokens = sum(r.usage.completion_tokens for r in replies if r.usage) + next(
        e.usage.completion_tokens for e in streamed if e.type == "usage" and e.usage)
    in_tokens = sum(r.usage.prompt_tokens for r in replies if r.usage) + next(
        e.usage.prompt_tokens for e in streamed if e.type == "usage" and e.usage)
    assert m[("ernie_gateway_requests_total", (("transport", "http"),))] == 6
    assert m[("ernie_gateway_errors_total", (("code", "invalid_api_key"),))] == 1
    assert m[("ernie_gateway_errors_total", (("code", "upstream_server_error"),))] == 1
    assert m[("ernie_gateway_tokens_total", (("direction", "out"),))] == out_tokens
    assert m[("ernie_gateway_tokens_total", (("direction", "in"),))] == in_tokens
    assert m[("ernie_gateway_ttft_seconds_count", ())] == 4
    assert m[("ernie_gateway_request_duration_seconds_count", ())] == 5
    assert m[("ernie_gateway_inflight_streams", ())] == 0


def test_healthz_and_models(ernie_simulator: ErnieSimulator) -> None:
    with gateway_for(ernie_simulator, models=("ernie-4.5-turbo-128k", "ernie-x1")) as gw:
        assert HTTP.get(gw.url + "/healthz").json()["status"] == "ok"
        sdk = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
        assert [m.id for m in sdk.models.list()] == ["ernie-4.5-turbo-128k", "ernie-x1"]
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
        sdk.chat.completions.create(model="ernie-x1", messages=[{"role": "user", "content": "x"}])
    assert ernie_simulator.chat_requests[-1].json["model"] == "ernie-x1"


def test_bad_requests_are_400s(ernie_simulator: ErnieSimulator) -> None:
    with gateway_for(ernie_simulator, max_body_bytes=10_000) as gw:
        url = gw.url + "/v1/chat/completions"
        assert HTTP.post(url, content=b"{not json").json()["error"]["code"] == "invalid_json"
        assert HTTP.post(url, json={"messages": []}).status_code == 400
        assert HTTP.post(url, json={"messages": [{"role": "wizard", "content": "x"}]}).status_code == 400
        assert HTTP.post(url, json={"messages": [{"role": "user", "content": "x" * 20_000}]}).status_code == 413
        bad_temp = HTTP.post(url, json={"temperature": 5, "messages": [{"role": "user", "content": "x"}]})
    assert bad_temp.status_code == 400 and bad_temp.json()["error"]["code"] == "invalid_request"
    assert not ernie_simulator.chat_requests


def test_content_filter_blocks_input_and_withdraws_output(ernie_simulator: ErnieSimulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocklist = tmp_path / "block.txt"
    blocklist.write_text("# terms\nforbidden\nre:secret\\d+\n", encoding="utf-8")
    with gateway_for(ernie_simulator, content_filter=str(blocklist), filter_notice="[withdrawn]") as gw:
        r = HTTP.post(gw.url + "/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": "tell me FORBIDDEN things"}]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "content_filter"
        assert not ernie_simulator.chat_requests
        # output: the term arrives split across chunks
        ernie_simulator.set_answer(text="the code is secret42 and more text after it", chunk_size=3, delay=0.02)
        events = list(_client(gw).stream("what is the code?"))
        safety = [e.safety for e in events if e.type == "safety"]
        assert safety and safety[-1] is not None and safety[-1].flag == 4  # ERNIE-aware clients withdraw
        assert events[-1].finish_reason == "content_filter"
        assert "more text after" not in "".join(e.text for e in events if e.type == "text")
        assert ernie_simulator.wait_for(lambda: ernie_simulator.chat_requests[-1].disconnected, 3)
        whole = HTTP.post(gw.url + "/v1/chat/completions",
                           json={"messages": [{"role": "user", "content": "again"}]}).json()
    assert whole["choices"][0]["message"]["content"] == "[withdrawn]"
    assert whole["choices"][0]["finish_reason"] == "content_filter"


def test_content_filter_can_be_a_python_callable(ernie_simulator: ErnieSimulator, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "my_policy.py").write_text(
        "def check(text, direction):\n    return 'no bananas' if direction == 'input' and 'banana' in text else None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with gateway_for(ernie_simulator, content_filter="my_policy:check") as gw:
        blocked = HTTP.post(gw.url + "/v1/chat/completions",
                             json={"messages": [{"role": "user", "content": "a banana"}]})
        fine = HTTP.post(gw.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "apple"}]})
    assert blocked.status_code == 400 and fine.status_code == 200


def test_access_log_is_one_json_line_per_request_without_keys_or_prompts(
        ernie_simulator: ErnieSimulator, tmp_path, access_log) -> None:  # type: ignore[no-untyped-def]
    from ernie_widget.gateway import KeyStore

    keys = KeyStore(tmp_path / "keys.db")
    key = keys.add("carol")
    with gateway_for(ernie_simulator, keys=keys) as gw:
        _client(gw, api_key=key).chat("my secret prompt")
        with pytest.raises(AuthenticationError):
            _client(gw, api_key=key + "x").chat("my secret prompt")
        list(_client(gw, api_key=key).stream("streamed prompt"))
    assert len(access_log) == 3
    records = [json.loads(line) for line in access_log]
    ok = records[0]
    assert ok["user"] == "carol" and ok["status"] == 200 and ok["transport"] == "http"
    assert ok["tokens_in"] > 0 and ok["tokens_out"] > 0 and ok["ttft_ms"] is not None and ok["duration_ms"] > 0
    assert ok["model"] and ok["finish_reason"] == "stop" and ok["stream"] is True  # Ernie.chat streams too
    assert records[1]["status"] == 401 and records[1]["error"] == "invalid_api_key" and records[1]["user"] is None
    assert records[2]["stream"] is True
    joined = "\n".join(access_log)
    assert key not in joined and key[4:] not in joined
    assert "secret prompt" not in joined and "prompt" not in records[0]


def test_prompts_are_logged_only_when_asked(ernie_simulator: ErnieSimulator, access_log) -> None:  # type: ignore[no-untyped-def]
    with gateway_for(ernie_simulator, log_prompts=True) as gw:
        _client(gw).chat("hello there, my key is sk-abcdefghijklmnopqrstuvwx")
    record = json.loads(access_log[-1])
    assert record["prompt"][-1]["content"].startswith("hello there")
    assert "abcdefghijklmnop" not in access_log[-1]  # keys in prompts are still masked
