"""The model table (client/models.py) and the thinking controls per surface (client/thinking.py).

Requests go to the protocol simulator over real sockets; a refusal must happen before anything reaches it.
"""

from __future__ import annotations

import asyncio
import copy
import json

import pytest

try:  # tests/ may or may not be a package
    from tests.client_support import MODES, client_args, collect
except ImportError:
    from client_support import MODES, client_args, collect  # type: ignore[no-redef]

from ernie_widget.client import AsyncErnie, BadRequestError, Ernie, ModelInfo, model_info
from ernie_widget.client.messages import input_limit
from ernie_widget.client.models import MODELS, UNKNOWN, thinking_models
from ernie_widget.client.thinking import apply_thinking, check_thinking
from ernie_widget.testing import Answer, Fault

HI = [{"role": "user", "content": "hi"}]
STREAMED = {"stream": True, "stream_options": {"include_usage": True}}


def _stream(sim, provider: str, **kw):
    """Stream one answer with the sync client; returns (events, the JSON body the simulator received)."""
    with Ernie(**client_args(sim, provider)) as client:
        events = list(client.stream("hi", **kw))
    return events, sim.chat_requests[-1].json


# -- the exact bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["qianfan", "aistudio"])
@pytest.mark.parametrize("enable", [True, False])
def test_enable_thinking_reaches_qianfan_and_aistudio_as_is(ernie_simulator, provider, enable):
    _, body = _stream(ernie_simulator, provider, model="ernie-4.5-vl-28b-a3b", enable_thinking=enable)
    assert body == {"model": "ernie-4.5-vl-28b-a3b", "messages": HI, **STREAMED, "enable_thinking": enable}


def test_enable_thinking_for_a_model_the_table_does_not_know_is_sent_as_is(ernie_simulator):
    # model names are data (docs/ernie-wire.md §1.2): a newer thinking model must not be blocked by the table
    _, body = _stream(ernie_simulator, "qianfan", model="qwen3-235b-a22b", enable_thinking=True)
    assert body["enable_thinking"] is True and body["model"] == "qwen3-235b-a22b"


def test_the_thinking_object_reaches_qianfan_v2_for_deepseek(ernie_simulator):
    _, body = _stream(ernie_simulator, "qianfan", model="deepseek-v3.1", thinking={"type": "enabled"})
    assert body == {"model": "deepseek-v3.1", "messages": HI, **STREAMED, "thinking": {"type": "enabled"}}


def test_openai_servers_get_enable_thinking_in_chat_template_kwargs_merged_with_the_callers(ernie_simulator):
    own = {"add_generation_prompt": True}
    _, body = _stream(ernie_simulator, "openai", enable_thinking=False, chat_template_kwargs=own,
                      reasoning_max_tokens=512)
    assert body == {"model": "default", "messages": HI, **STREAMED,
                    "chat_template_kwargs": {"add_generation_prompt": True, "enable_thinking": False},
                    "reasoning_max_tokens": 512}
    assert own == {"add_generation_prompt": True}  # the caller's dict is not changed


def test_openai_servers_get_reasoning_max_tokens_alone(ernie_simulator):
    _, body = _stream(ernie_simulator, "openai", model="baidu/ERNIE-4.5-21B-A3B-Thinking", reasoning_max_tokens=64)
    assert body["reasoning_max_tokens"] == 64
    assert "chat_template_kwargs" not in body and "enable_thinking" not in body


def test_every_retry_sends_the_same_rewritten_body(ernie_simulator):
    # the rewrite runs on each attempt's copy: a retried request must not lose enable_thinking
    ernie_simulator.push(Fault.status(503))
    with Ernie(**client_args(ernie_simulator, "openai", max_retries=1)) as client:
        reply = client.chat("hi", enable_thinking=True)
    first, second = (r.json for r in ernie_simulator.chat_requests)
    assert reply.text and first == second
    assert second["chat_template_kwargs"] == {"enable_thinking": True}


def test_unstreamed_requests_are_rewritten_too(ernie_simulator):
    async def run() -> None:
        async with AsyncErnie(**client_args(ernie_simulator, "openai")) as client, \
                client.unstreamed("hi", enable_thinking=False) as s:
            async for _ in s:
                pass

    asyncio.run(run())
    body = ernie_simulator.chat_requests[-1].json
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and "stream" not in body


# -- thinking text arrives as reasoning events -----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("provider", "kw"), [
    ("qianfan", {"model": "ernie-5.0-thinking-preview", "enable_thinking": True}),
    ("aistudio", {"model": "ernie-4.5-vl-28b-a3b", "enable_thinking": True}),
    ("openai", {"enable_thinking": True, "reasoning_max_tokens": 100}),
])
def test_thinking_arrives_as_reasoning_events_before_the_answer(ernie_simulator, mode, provider, kw):
    ernie_simulator.push(Answer(text="答案是 4。", reasoning="2 加 2 等于 4。", chunk_size=3))
    out = collect(ernie_simulator, mode, provider, "2+2?", stream_kw=kw)
    assert out.error is None
    assert "".join(e.text for e in out.of("reasoning")) == "2 加 2 等于 4。"
    assert out.text == "答案是 4。"
    assert out.types.index("reasoning") < out.types.index("text")
    assert out.reply.reasoning == "2 加 2 等于 4。" and out.reply.text == "答案是 4。"


@pytest.mark.parametrize(("provider", "kw", "reasoning"), [
    ("qianfan", {"model": "ernie-5.0-thinking-preview", "enable_thinking": False}, ""),
    ("openai", {"enable_thinking": False}, ""),
    ("openai", {"reasoning_max_tokens": 4}, "2 加 "),  # one token per character here
])
def test_the_simulator_honours_the_thinking_switches(ernie_simulator, provider, kw, reasoning):
    # as the services do: thinking switched off sends none, reasoning_max_tokens cuts it
    ernie_simulator.push(Answer(text="答案是 4。", reasoning="2 加 2 等于 4。", chunk_size=3))
    out = collect(ernie_simulator, "sync", provider, "2+2?", stream_kw=kw)
    assert out.reply.reasoning == reasoning and out.reply.text == "答案是 4。"
    assert bool(out.of("reasoning")) == bool(reasoning)


# -- refusals, before anything is sent ---------------------------------------------------------------------------

REFUSED = [
    # (provider, stream kwargs, words the message must hold)
    ("qianfan", {"model": "ernie-4.5-turbo-32k", "enable_thinking": True},
     ["does not take enable_thinking", "ernie-5.0-thinking-preview", "ernie-4.5-vl-28b-a3b"]),
    ("qianfan", {"model": "ERNIE-3.5-8K", "enable_thinking": False}, ["does not take enable_thinking"]),
    ("qianfan", {"model": "ernie-x1-turbo-32k", "enable_thinking": False}, ["always thinks", "omit it"]),
    ("aistudio", {"model": "ernie-4.5-21b-a3b", "enable_thinking": True}, ["ernie-4.5-vl-28b-a3b"]),
    ("qianfan", {"model": "deepseek-v3.1", "enable_thinking": True}, ["thinking={'type': 'enabled'}"]),
    ("qianfan", {"model": "ernie-4.5-turbo-128k", "thinking": {"type": "enabled"}},
     ["DeepSeek, kimi and GLM", "enable_thinking"]),
    ("aistudio", {"model": "deepseek-v3", "thinking": {"type": "enabled"}}, ["Qianfan v2"]),
    ("qianfan", {"model": "deepseek-v3.1", "thinking": "on"}, ['{"type": "enabled"}']),
    ("qianfan", {"model": "ernie-5.0-thinking-preview", "reasoning_max_tokens": 100},
     ["max_tokens", "provider 'openai'"]),
    ("aistudio", {"thinking_budget": 100}, ["max_tokens"]),
    ("qianfan", {"model": "ernie-5.0-thinking-preview", "reasoning_effort": "low"}, ["enable_thinking"]),
    ("qianfan", {"model": "ernie-5.0-thinking-preview", "enable_thinking": "yes"}, ["True or False"]),
    ("openai", {"thinking_budget": 100}, ["reasoning_max_tokens"]),
    ("openai", {"reasoning_effort": "high"}, ["enable_thinking", "reasoning_max_tokens"]),
    ("openai", {"thinking": {"type": "enabled"}}, ["enable_thinking"]),
    ("openai", {"reasoning_max_tokens": 0}, ["positive integer"]),
    ("openai", {"enable_thinking": 1}, ["True or False"]),
    ("openai", {"enable_thinking": True, "chat_template_kwargs": {"enable_thinking": False}}, ["contradicts"]),
    ("openai", {"enable_thinking": True, "chat_template_kwargs": "x"}, ["must be a dict"]),
    ("qianfan-v1", {"enable_thinking": True}, ["Qianfan v1 has no thinking models", "provider 'qianfan'"]),
    ("qianfan-v1", {"reasoning_max_tokens": 10}, ["Qianfan v1"]),
]


@pytest.mark.parametrize(("provider", "kw", "words"), REFUSED, ids=[f"{p}-{'-'.join(k)}" for p, k, _ in REFUSED])
def test_a_thinking_parameter_the_surface_does_not_take_is_refused_before_sending(ernie_simulator, provider, kw,
                                                                                   words):
    before = len(ernie_simulator.requests)  # chat and OAuth requests: v1 must not even fetch its token
    with Ernie(**client_args(ernie_simulator, provider)) as client, pytest.raises(BadRequestError) as info:
        client.stream("hi", **kw)
    message = info.value.message
    assert " / " in message and any("\u4e00" <= c <= "\u9fff" for c in message)  # 中文 / English
    for word in words:
        assert word in message
    assert len(ernie_simulator.requests) == before


def test_the_async_client_refuses_too(ernie_simulator):
    async def run() -> None:
        async with AsyncErnie(**client_args(ernie_simulator, "qianfan")) as client:
            client.stream("hi", model="ernie-4.5-turbo-128k", enable_thinking=True)

    with pytest.raises(BadRequestError, match="enable_thinking"):
        asyncio.run(run())
    assert ernie_simulator.chat_requests == []


def test_none_means_not_given(ernie_simulator):
    _, body = _stream(ernie_simulator, "qianfan-v1", enable_thinking=None, reasoning_max_tokens=None)
    assert "enable_thinking" not in body and "reasoning_max_tokens" not in body


def test_the_local_model_and_replay_rules():
    # the local provider is not an HTTPProvider: AsyncErnie.check_params must call check_thinking for it
    with pytest.raises(BadRequestError, match="local model has no thinking switch"):
        check_thinking("local", "SmolLM2-135M-Instruct-Q4_1", {"enable_thinking": False})
    params = {"enable_thinking": True, "model": None}
    apply_thinking("replay", None, params)  # replay answers from the cassette: nothing is sent or changed
    assert params == {"enable_thinking": True, "model": None}


def test_check_thinking_never_changes_the_params():
    params = {"enable_thinking": True, "chat_template_kwargs": {"a": 1}}
    frozen = copy.deepcopy(params)
    check_thinking("openai", None, params)
    assert params == frozen
    apply_thinking("openai", None, params)
    assert params == {"chat_template_kwargs": {"a": 1, "enable_thinking": True}}
    apply_thinking("openai", None, params)  # idempotent: a second pass finds nothing to rewrite
    assert params == {"chat_template_kwargs": {"a": 1, "enable_thinking": True}}


# -- a client we did not write sends the same -------------------------------------------------------------------


def test_the_openai_sdk_sends_chat_template_kwargs_as_we_do(ernie_simulator):
    import openai  # a dev dependency
    extra = {"chat_template_kwargs": {"enable_thinking": False}, "reasoning_max_tokens": 256}
    sdk = openai.OpenAI(base_url=ernie_simulator.base_url("openai"), api_key="sk-test", max_retries=0)
    stream = sdk.chat.completions.create(model="default", messages=HI, stream=True, extra_body=extra)
    sdk_text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    sdk.close()
    sdk_body = ernie_simulator.chat_requests[-1].json

    events, ours = _stream(ernie_simulator, "openai", enable_thinking=False, reasoning_max_tokens=256)
    assert sdk_text == "".join(e.text for e in events if e.type == "text")
    for key in ("model", "messages", "stream", "chat_template_kwargs", "reasoning_max_tokens"):
        assert ours[key] == sdk_body[key], key
    # the same bytes for the part the server's chat template reads
    assert json.dumps(ours["chat_template_kwargs"]) == json.dumps(sdk_body["chat_template_kwargs"])


# -- the model table -----------------------------------------------------------------------------------------------


def test_every_row_has_a_source_and_sane_limits():
    names = [m.name for m in MODELS]
    assert len(names) == len(set(names))
    for m in MODELS:
        assert isinstance(m, ModelInfo) and m.known
        assert m.source.strip() and ("docs/ernie-wire.md §" in m.source or "qianfan 0.4.12.3" in m.source
                                     or "not in sources" in m.source), m.name
        assert m.context_window > 0 and m.max_output_tokens > 0 and m.max_input_tokens > 0, m.name
        assert m.max_input_tokens <= m.context_window and m.max_output_tokens <= m.context_window, m.name
        assert m.max_input_chars is None or m.max_input_chars > 0, m.name
        assert not (m.thinking and m.always_thinks), m.name  # a switch, or always on: not both
        assert m.pattern and m.name == m.name.lower()


def test_each_rows_own_name_finds_that_row():
    # first match wins: a family pattern listed too early would hide a specific row
    for m in MODELS:
        assert model_info(m.name) is m, m.name
        assert model_info(m.name.upper()) is m, m.name


@pytest.mark.parametrize("name", ["some-unknown-model", "gpt-3.5-turbo", "default", "SmolLM2-135M-Instruct-Q4_1",
                                  "", None])
def test_an_unknown_model_gets_conservative_figures_and_no_capability(name):
    info = model_info(name)
    assert not info.known and info.family == "unknown"
    assert info.name == (name or "unknown")
    assert not (info.tools or info.vision or info.json_schema or info.thinking or info.always_thinks)
    assert info.max_input_tokens <= min(m.max_input_tokens for m in MODELS)
    assert info.max_output_tokens <= min(m.max_output_tokens for m in MODELS)
    assert info.max_input_chars is None
    assert input_limit(name) == (None, None)  # not trimmed: its server's own limit is unknown


@pytest.mark.parametrize(("spelling", "row"), [
    ("ERNIE-Speed-8K", "ernie-speed-8k"), ("ernie_speed", "ernie-speed-8k"), ("ERNIE Speed-AppBuilder", "ernie-speed-8k"),
    ("ERNIE-Bot", "ernie-3.5-8k"), ("completions", "ernie-3.5-8k"), ("ERNIE-Bot-4", "ernie-4.0-8k"),
    ("completions_pro", "ernie-4.0-8k"), ("ERNIE-Bot-turbo", "ernie-lite-8k-0922"), ("eb-instant", "ernie-lite-8k-0922"),
    ("ERNIE-Character-8K", "ernie-char-8k"), ("ERNIE-4.0-Turbo-8K-Latest", "ernie-4.0-turbo-8k"),
    ("baidu/ERNIE-4.5-21B-A3B-Thinking", "ernie-4.5-21b-a3b-thinking"), ("ERNIE-4.5-21B-A3B-PT", "ernie-4.5-21b-a3b"),
    ("baidu/ERNIE-4.5-0.3B-Paddle", "ernie-4.5-0.3b"), ("ERNIE-4.5-300B-A47B-Paddle", "ernie-4.5-300b-a47b"),
    ("baidu/ERNIE-4.5-VL-28B-A3B-PT", "ernie-4.5-vl-28b-a3b"), ("ernie-4.5-turbo-128k-preview", "ernie-4.5-turbo-128k"),
    ("ernie-x1-32k-preview", "ernie-x1-32k"), ("ERNIE-X1.1-Preview", "ernie-x1.1-preview"),
])
def test_lookup_is_case_insensitive_across_each_surfaces_spelling(spelling, row):
    assert model_info(spelling).name == row


def test_capability_flags_of_named_models():
    flags = {n: (i.tools, i.vision, i.thinking, i.always_thinks)
             for n in ("ernie-5.0-thinking-preview", "ernie-x1-turbo-32k", "ernie-x1.1-preview",
                       "ernie-4.5-turbo-vl-preview", "ernie-4.5-turbo-vl", "ernie-4.5-vl-28b-a3b",
                       "ernie-4.5-turbo-128k", "ernie-4.5-21b-a3b-thinking", "ernie-4.0-8k", "ernie-3.5-8k",
                       "ernie-speed-8k", "ernie-lite-8k", "ernie-char-8k")
             for i in [model_info(n)]}
    assert flags == {
        #                              tools  vision thinking always
        "ernie-5.0-thinking-preview": (False, False, True, False),
        "ernie-x1-turbo-32k": (False, False, False, True),
        "ernie-x1.1-preview": (False, False, False, True),
        "ernie-4.5-turbo-vl-preview": (False, True, True, False),
        "ernie-4.5-turbo-vl": (False, True, False, False),
        "ernie-4.5-vl-28b-a3b": (False, True, True, False),
        "ernie-4.5-turbo-128k": (False, False, False, False),
        "ernie-4.5-21b-a3b-thinking": (True, False, False, True),
        "ernie-4.0-8k": (True, False, False, False),  # v1 `functions`
        "ernie-3.5-8k": (True, False, False, False),
        "ernie-speed-8k": (True, False, False, False),  # v1 `tools`
        "ernie-lite-8k": (False, False, False, False),
        "ernie-char-8k": (False, False, False, False),
    }
    assert not any(m.json_schema for m in MODELS)  # documented per surface, for no model (docs/ernie-wire.md §6)
    # what the refusal names are exactly the documented switches (docs/ernie-wire.md §6, Wm95lyynv)
    assert {"ernie-5.0-thinking-preview", "ernie-4.5-turbo-vl-preview", "ernie-4.5-turbo-vl-32k-preview",
            "ernie-4.5-vl-28b-a3b"} <= set(thinking_models())


@pytest.mark.parametrize(("name", "chars", "tokens"), [
    ("ERNIE-Speed-8K", 11200, 6144), ("ernie-speed-128k", 507904, 124000), ("ernie-3.5-128k", 516096, 126976),
    ("ernie-4.0-8k", 20000, 5120), ("ernie-lite-pro-8k", 24000, 6144), ("ernie-4.0-turbo-128k", None, 124000),
    ("ernie-4.5-turbo-128k", None, 123000), ("ernie-4.5-21b-a3b", None, 120000), ("ernie-x1-turbo-32k", None, 28000),
])
def test_input_limit_comes_from_the_table(name, chars, tokens):
    assert input_limit(name) == (chars, tokens)
    info = model_info(name)
    assert (info.max_input_chars, info.max_input_tokens) == (chars, tokens)


def test_unknown_figures_are_the_unknown_row():
    assert model_info("nope").context_window == UNKNOWN.context_window
