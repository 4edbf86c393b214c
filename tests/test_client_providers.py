"""Every provider streams and chats against the simulator; the provider quirks become one event shape."""

from __future__ import annotations

import asyncio

import pytest

try:  # tests/ may or may not be a package
    from tests.client_support import MODES, PROVIDERS, chat, client_args, collect, sent_events
except ImportError:
    from client_support import MODES, PROVIDERS, chat, client_args, collect, sent_events  # type: ignore[no-redef]

from ernie_widget.client import (
    AsyncErnie,
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    Ernie,
    Safety,
    Usage,
)
from ernie_widget.testing import Fault

ANSWER = "你好，世界！Hello, world."
# v1 has no reasoning field (ERNIE X1 is v2-only), so reasoning tests skip it by construction
REASONING_PROVIDERS = ("qianfan", "aistudio", "openai")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_streams_the_answer_as_text_events(ernie_simulator, provider, mode):
    ernie_simulator.set_answer(text=ANSWER, chunk_size=3)
    out = collect(ernie_simulator, mode, provider)
    assert out.error is None
    assert out.text == ANSWER
    assert len(out.of("text")) == len(range(0, len(ANSWER), 3))
    assert out.types[-1] == "finish"
    assert out.reply is not None and out.reply.text == ANSWER and out.reply.provider == provider


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_chat_returns_the_whole_reply(ernie_simulator, provider, mode):
    reply = chat(ernie_simulator, mode, provider, "ping")
    assert reply.text == "你好！You said: ping"
    assert reply.finish_reason == "stop"
    assert ernie_simulator.chat_requests[-1].surface == provider


@pytest.mark.parametrize("provider", ["qianfan", "aistudio", "openai"])
def test_bearer_surfaces_send_the_key_as_authorization(ernie_simulator, provider):
    args = client_args(ernie_simulator, provider, api_key="bearer-key-123456")
    ernie_simulator.openai_api_key = "bearer-key-123456"
    with Ernie(**args) as client:
        client.chat("hi")
    assert ernie_simulator.chat_requests[-1].headers["authorization"] == "Bearer bearer-key-123456"


# -- Qianfan v1: OAuth token ----------------------------------------------------------------------


def _oauth(sim):
    return [r for r in sim.requests if r.surface == "oauth"]


def _issued_tokens(sim):
    import json

    return [json.loads(r.response_body)["access_token"] for r in _oauth(sim)]


@pytest.mark.parametrize("mode", MODES)
def test_v1_fetches_an_oauth_token_and_sends_it_as_access_token(ernie_simulator, mode):
    chat(ernie_simulator, mode, "qianfan-v1")
    (oauth,) = _oauth(ernie_simulator)
    assert oauth.query["client_id"] == "sim-ak" and oauth.query["client_secret"] == "sim-sk"
    assert ernie_simulator.chat_requests[-1].query["access_token"] == _issued_tokens(ernie_simulator)[0]


def test_v1_token_is_cached_across_requests_of_one_client(ernie_simulator):
    with Ernie(**client_args(ernie_simulator, "qianfan-v1")) as client:
        client.chat("one")
        client.chat("two")
        list(client.stream("three"))
    assert len(_oauth(ernie_simulator)) == 1
    tokens = {r.query["access_token"] for r in ernie_simulator.chat_requests}
    assert tokens == set(_issued_tokens(ernie_simulator))


def test_v1_token_is_cached_across_concurrent_async_requests(ernie_simulator):
    async def run():
        async with AsyncErnie(**client_args(ernie_simulator, "qianfan-v1")) as client:
            return await asyncio.gather(*(client.chat(f"q{i}") for i in range(5)))

    replies = asyncio.run(run())
    assert [r.text for r in replies] == [f"你好！You said: q{i}" for i in range(5)]
    assert len(_oauth(ernie_simulator)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_v1_expired_token_is_refreshed_once_and_the_request_resent(ernie_simulator, mode):
    args = client_args(ernie_simulator, "qianfan-v1")

    if mode == "sync":
        with Ernie(**args) as client:
            client.chat("first")
            ernie_simulator.expire_tokens()
            reply = client.chat("second")
    else:
        async def run():
            async with AsyncErnie(**args) as client:
                await client.chat("first")
                ernie_simulator.expire_tokens()
                return await client.chat("second")

        reply = asyncio.run(run())
    assert reply.text == "你好！You said: second"
    assert reply.metrics.retries == 0  # a token refresh is not a retry
    first, stale, fresh = ernie_simulator.chat_requests
    old_token, new_token = _issued_tokens(ernie_simulator)
    assert first.query["access_token"] == stale.query["access_token"] == old_token
    assert fresh.query["access_token"] == new_token != old_token


@pytest.mark.parametrize("mode", MODES)
def test_v1_token_is_refreshed_only_once_per_request(ernie_simulator, mode):
    ernie_simulator.push(Fault.error_in_200(code=111, message="Access token expired"),
                         Fault.error_in_200(code=111, message="Access token expired"))
    out = collect(ernie_simulator, mode, "qianfan-v1", max_retries=3)
    assert isinstance(out.error, AuthenticationError)
    assert out.error.code == 111
    assert len(_oauth(ernie_simulator)) == 2
    assert len(ernie_simulator.chat_requests) == 2


@pytest.mark.parametrize("mode", MODES)
def test_v1_rejected_ak_sk_raise_authentication_error_without_a_chat_request(ernie_simulator, mode):
    out = collect(ernie_simulator, mode, "qianfan-v1", secret_key="bad-secret-key", max_retries=3)
    assert isinstance(out.error, AuthenticationError)
    assert len(_oauth(ernie_simulator)) == 1
    assert ernie_simulator.chat_requests == []


# -- Qianfan v1: message rules --------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_v1_system_message_is_hoisted_to_the_system_field(ernie_simulator, mode):
    chat(ernie_simulator, mode, "qianfan-v1", [{"role": "system", "content": "你是助手"},
                                               {"role": "user", "content": "hi"}])
    body = ernie_simulator.chat_requests[-1].json
    assert body["system"] == "你是助手"
    assert body["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("mode", MODES)
def test_v1_system_keyword_is_hoisted_too(ernie_simulator, mode):
    chat(ernie_simulator, mode, "qianfan-v1", "hi", chat_kw={"system": "be brief"})
    body = ernie_simulator.chat_requests[-1].json
    assert body["system"] == "be brief"
    assert all(m["role"] != "system" for m in body["messages"])


@pytest.mark.parametrize("mode", MODES)
def test_v1_leading_assistant_is_dropped_and_same_roles_merged(ernie_simulator, mode):
    history = [
        {"role": "assistant", "content": "欢迎！"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"},
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"},
    ]
    reply = chat(ernie_simulator, mode, "qianfan-v1", history)
    assert ernie_simulator.chat_requests[-1].json["messages"] == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c\n\nd"},
        {"role": "user", "content": "e"},
    ]
    assert reply.text == "你好！You said: e"  # the simulator accepted the shape (odd, alternating)


@pytest.mark.parametrize("mode", MODES)
def test_v1_history_not_ending_with_user_is_rejected_before_sending(ernie_simulator, mode):
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    with pytest.raises(BadRequestError, match="user"):
        chat(ernie_simulator, mode, "qianfan-v1", history)
    assert ernie_simulator.requests == []  # not even the OAuth token was fetched


def test_v2_sends_the_history_unchanged(ernie_simulator):
    history = [{"role": "system", "content": "s"}, {"role": "assistant", "content": "x"},
               {"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    chat(ernie_simulator, "sync", "qianfan", history)
    assert ernie_simulator.chat_requests[-1].json["messages"] == history


# -- what a stream carries besides text ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", REASONING_PROVIDERS)
def test_reasoning_is_kept_apart_from_the_answer(ernie_simulator, provider, mode):
    ernie_simulator.set_answer(text="答案是 42。", reasoning="先想一想……", chunk_size=2)
    out = collect(ernie_simulator, mode, provider)
    assert "".join(e.text for e in out.of("reasoning")) == "先想一想……"
    assert out.text == "答案是 42。"
    assert out.types.index("reasoning") < out.types.index("text")
    assert out.reply.reasoning == "先想一想……" and out.reply.text == "答案是 42。"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", REASONING_PROVIDERS)
def test_usage_comes_from_the_final_usage_only_chunk(ernie_simulator, provider, mode):
    ernie_simulator.set_answer(text="abc", usage={"prompt_tokens": 11, "completion_tokens": 22})
    out = collect(ernie_simulator, mode, provider)
    last = sent_events(ernie_simulator.chat_requests[-1])[-1]
    assert last["choices"] == [] and last["usage"]["total_tokens"] == 33  # precondition: the wire shape
    (usage_event,) = out.of("usage")
    assert usage_event.usage == Usage(11, 22, 33)
    assert out.reply.usage == Usage(11, 22, 33)
    assert out.types[-2:] == ["usage", "finish"]


@pytest.mark.parametrize("mode", MODES)
def test_v1_usage_comes_from_the_is_end_chunk(ernie_simulator, mode):
    ernie_simulator.set_answer(text="abcdef", chunk_size=2, usage={"prompt_tokens": 5, "completion_tokens": 6})
    out = collect(ernie_simulator, mode, "qianfan-v1")
    assert out.reply.usage == Usage(5, 6, 11)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1", "aistudio"])
def test_finish_reason_normal_becomes_stop(ernie_simulator, provider, mode):
    out = collect(ernie_simulator, mode, provider)
    assert '"finish_reason": "normal"' in "".join(ernie_simulator.chat_requests[-1].events)  # precondition
    assert out.of("finish")[0].finish_reason == "stop"
    assert out.reply.finish_reason == "stop"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1"])
def test_truncated_answer_finishes_with_length(ernie_simulator, provider, mode):
    ernie_simulator.set_answer(text="abcdef", is_truncated=True)
    out = collect(ernie_simulator, mode, provider)
    assert out.reply.finish_reason == "length" and out.reply.truncated


SEARCH = [{"index": 1, "url": "https://example.com/a", "title": "示例"}]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1"])
def test_search_results_become_an_event_and_reach_the_reply(ernie_simulator, provider, mode):
    ernie_simulator.set_answer(text="abcdef", chunk_size=2, search_results=SEARCH)
    out = collect(ernie_simulator, mode, provider)
    events = out.of("search_results")
    assert events and events[0].results == tuple(SEARCH)
    assert out.reply.search_results == tuple(SEARCH)
    assert out.text == "abcdef"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1", "aistudio"])
def test_safety_signals_become_a_safety_event(ernie_simulator, provider, mode):
    ernie_simulator.set_answer(text="abcdef", chunk_size=2, flag=2, ban_round=3, need_clear_history=True)
    out = collect(ernie_simulator, mode, provider)
    assert out.error is None
    events = out.of("safety")  # v1 repeats need_clear_history on every chunk: one event per change
    assert events and events[-1].safety == Safety(flag=2, ban_round=3, need_clear_history=True)
    assert out.reply.safety == events[-1].safety
    assert out.text == "abcdef"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1"])
def test_flag_3_raises_content_filter_error(ernie_simulator, provider, mode):
    ernie_simulator.set_answer(text="abcdef", chunk_size=2, flag=3)
    out = collect(ernie_simulator, mode, provider, max_retries=3)
    assert isinstance(out.error, ContentFilterError)
    assert out.error.code == "flag_3"
    assert len(ernie_simulator.chat_requests) == 1  # never retried


@pytest.mark.parametrize("mode", MODES)
def test_non_stream_json_answer_to_a_stream_request_is_read_whole(ernie_simulator, mode):
    # A server that ignores `stream: true` answers with one JSON body: still an answer, not an error.
    body = {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "整段回答"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    ernie_simulator.push(Fault.status(200, body=body))
    out = collect(ernie_simulator, mode, "openai")
    assert out.text == "整段回答"
    assert out.reply.usage == Usage(1, 2, 3) and out.reply.finish_reason == "stop"


# -- temperature: ERNIE takes (0, 1], OpenAI-compatible servers [0, 2] ----------------------------------

ERNIE_SURFACES = ("qianfan", "qianfan-v1", "aistudio")


@pytest.mark.parametrize("provider", ERNIE_SURFACES)
def test_temperature_zero_is_sent_to_ernie_as_its_smallest_value(ernie_simulator, provider):
    with Ernie(**client_args(ernie_simulator, provider), max_retries=0) as client:
        reply = client.chat("确定性", temperature=0)
        for_batch = client.map(["确定性"], temperature=0, progress=False)
    assert reply.text and for_batch.errors == {}
    assert [r.json["temperature"] for r in ernie_simulator.chat_requests] == [0.01, 0.01]


@pytest.mark.parametrize("provider", ERNIE_SURFACES)
def test_temperature_above_one_is_refused_for_ernie_before_sending(ernie_simulator, provider):
    with Ernie(**client_args(ernie_simulator, provider), max_retries=0) as client:
        with pytest.raises(BadRequestError, match=r"temperature in \(0, 1\]") as info:
            client.chat("hi", temperature=1.5)
        with pytest.raises(BadRequestError):
            client.map(["hi"], temperature=1.5, progress=False)
    assert "超出范围" in str(info.value)
    assert ernie_simulator.chat_requests == []


def test_openai_compatible_servers_get_the_temperature_as_given(ernie_simulator):
    with Ernie(**client_args(ernie_simulator, "openai"), max_retries=0) as client:
        client.chat("a", temperature=0)
        client.chat("b", temperature=1.5)
        with pytest.raises(BadRequestError, match=r"\[0, 2\]"):
            client.chat("c", temperature=2.5)
    assert [r.json["temperature"] for r in ernie_simulator.chat_requests] == [0, 1.5]


@pytest.mark.parametrize("provider", ERNIE_SURFACES)
def test_the_simulator_refuses_what_ernie_refuses(ernie_simulator, provider):
    # what a client without the mapping meets: the real service's error, as the simulator plays it
    import httpx2

    try:
        from tests.test_simulator import request_kwargs
    except ImportError:
        from test_simulator import request_kwargs  # type: ignore[no-redef]

    if provider == "qianfan-v1":
        with Ernie(**client_args(ernie_simulator, provider)) as client:
            client.chat("token first")  # the OAuth token the raw request below needs
    r = httpx2.post(**request_kwargs(ernie_simulator, provider, stream=False, temperature=0), timeout=5)
    body = r.json()
    if provider == "qianfan-v1":
        assert r.status_code == 200 and body["error_code"] == 336003
    else:
        assert r.status_code == 400 and body["error"]["code"] == "invalid_argument"
