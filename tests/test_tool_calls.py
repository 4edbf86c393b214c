"""Tool calling on the wire: requests carry tools, streamed fragments assemble into calls, histories round-trip.

Every shape is scripted in the simulator (no capture of Qianfan's live streamed tool calls is public) and
checked through the real client over a real socket; the openai SDK assembles the same calls from the same
bytes, a cross-check against a client we did not write.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import pytest

from ernie_widget.client import AsyncErnie, BadRequestError, Ernie, ToolCall, tool
from ernie_widget.testing import Answer, ErnieSimulator
from ernie_widget.testing._tools import TOOL_CALL_STYLES
from tests.client_support import client_args, collect

OPENAI_SHAPED = ("qianfan", "aistudio", "openai")

CALLS = [
    {"id": "call_a", "name": "get_weather", "arguments": {"city": "北京", "days": 3}},
    {"id": "call_b", "name": "get_weather", "arguments": {"city": "上海", "unit": "f"}},
]


def get_weather(city: str, unit: Literal["c", "f"] = "c", days: int = 1) -> str:
    """The weather forecast for a city.

    Args:
        city: The city, e.g. 北京.
        unit: Celsius or Fahrenheit.
        days: How many days ahead.
    """
    return f"{city}: 20°{unit.upper()} for {days} day(s)"


@pytest.fixture(scope="module")
def sim() -> Any:
    with ErnieSimulator() as s:
        yield s


def _expected() -> list[tuple[str, str, dict[str, Any]]]:
    return [(c["id"], c["name"], c["arguments"]) for c in CALLS]


@pytest.mark.parametrize("style", TOOL_CALL_STYLES)
@pytest.mark.parametrize("provider", OPENAI_SHAPED)
def test_streamed_fragments_assemble_into_calls(sim: ErnieSimulator, provider: str, style: str) -> None:
    sim.push(Answer(tool_calls=CALLS, tool_call_style=style, chunk_size=3))
    out = collect(sim, "sync", provider, "北京和上海的天气?", stream_kw={"tools": [get_weather]})
    assert out.error is None and out.reply is not None
    assert [(c.id, c.name, c.parsed) for c in out.reply.tool_calls] == _expected()
    assert out.reply.finish_reason == "tool_calls"
    # the fragments a UI saw add up to the same argument text, call by call
    for n, call in enumerate(out.reply.tool_calls):
        pieces = [e.tool_call.arguments for e in out.of("tool_call_delta") if e.tool_call.index == n]
        assert "".join(pieces) == call.arguments
        assert json.loads(call.arguments) == CALLS[n]["arguments"]
    # complete calls come once each, before finish
    types = out.types
    assert types.count("tool_call") == 2
    assert types.index("finish") > max(i for i, t in enumerate(types) if t == "tool_call")
    sent = sim.chat_requests[-1].json["tools"]
    assert sent[0]["function"]["name"] == "get_weather"
    assert sent[0]["function"]["parameters"]["required"] == ["city"]


@pytest.mark.parametrize("provider", OPENAI_SHAPED)
def test_async_and_unstreamed_give_the_same_calls(sim: ErnieSimulator, provider: str) -> None:
    sim.push(Answer(tool_calls=CALLS, tool_call_style="interleaved"))
    out = collect(sim, "async", provider, "天气", stream_kw={"tools": [get_weather]})
    assert out.reply is not None
    assert [(c.id, c.name, c.parsed) for c in out.reply.tool_calls] == _expected()

    sim.push(Answer(tool_calls=CALLS))

    async def unstreamed() -> Any:
        async with AsyncErnie(**client_args(sim, provider)) as client:
            async with client.unstreamed("天气", tools=[get_weather]) as s:
                events = [ev async for ev in s]
            return s.reply, events

    reply, events = asyncio.run(unstreamed())
    assert sim.chat_requests[-1].json.get("stream") is not True
    assert [(c.id, c.name, c.parsed) for c in reply.tool_calls] == _expected()
    assert [e.type for e in events].count("tool_call") == 2


@pytest.mark.parametrize("finish", ["normal", "stop", ""])
def test_calls_count_whatever_the_finish_reason(sim: ErnieSimulator, finish: str) -> None:
    # Qianfan says "normal" where OpenAI says "stop"; a server may also send no finish reason at all
    sim.push(Answer(tool_calls=CALLS[:1], finish_reason=finish))
    out = collect(sim, "sync", "qianfan", "天气", stream_kw={"tools": [get_weather]})
    assert out.reply is not None and [c.name for c in out.reply.tool_calls] == ["get_weather"]
    assert out.reply.finish_reason == "tool_calls"
    assert out.types.count("tool_call") == 1


def test_text_before_a_call_and_unparsable_arguments(sim: ErnieSimulator) -> None:
    sim.push(Answer(text="我来查一下。", tool_calls=[{"id": "c1", "name": "get_weather", "arguments": '{"city": "北'}]))
    out = collect(sim, "sync", "openai", "天气", stream_kw={"tools": [get_weather]})
    assert out.reply is not None and out.reply.text == "我来查一下。"
    (call,) = out.reply.tool_calls
    assert call.parsed is None and "JSON" in (call.error or "") and call.arguments == '{"city": "北'
    sim.push(Answer(tool_calls=[{"id": "c2", "name": "get_weather", "arguments": "[1, 2]"}]))
    (call,) = collect(sim, "sync", "openai", "天气", stream_kw={"tools": [get_weather]}).reply.tool_calls  # type: ignore[union-attr]
    assert call.parsed is None and "object" in (call.error or "")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("provider", OPENAI_SHAPED)
def test_history_round_trips(sim: ErnieSimulator, provider: str, mode: str) -> None:
    sim.push(Answer(tool_calls=CALLS), Answer(text="北京晴，上海多云。"))

    def results(reply: Any) -> list[dict[str, Any]]:
        return [{"role": "tool", "tool_call_id": c.id, "content": get_weather(**c.parsed)} for c in reply.tool_calls]

    async def run_async() -> Any:
        async with AsyncErnie(**client_args(sim, provider)) as client:
            first = await client.chat("天气?", tools=[get_weather])
            history = [{"role": "user", "content": "天气?"}, first, *results(first)]
            return await client.chat(history, tools=[get_weather])

    if mode == "sync":
        with Ernie(**client_args(sim, provider)) as client:
            first = client.chat("天气?", tools=[get_weather])
            final = client.chat([{"role": "user", "content": "天气?"}, first, *results(first)], tools=[get_weather])
    else:
        final = asyncio.run(run_async())
    assert final.text == "北京晴，上海多云。" and not final.tool_calls
    sent = sim.chat_requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == ["call_a", "call_b"]
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == json.dumps(CALLS[0]["arguments"], ensure_ascii=False)
    assert [m["tool_call_id"] for m in sent[2:]] == ["call_a", "call_b"]
    assert sent[2]["content"] == "北京: 20°C for 3 day(s)"


def test_bad_histories_are_refused_before_sending(sim: ErnieSimulator) -> None:
    before = len(sim.chat_requests)
    with Ernie(**client_args(sim, "qianfan")) as client:
        with pytest.raises(BadRequestError, match="tool_calls"):
            client.chat([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "1"}])
        with pytest.raises(BadRequestError, match=r"function\.name"):
            client.chat([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "a"}]},
                         {"role": "tool", "tool_call_id": "a", "content": "1"}])
        with pytest.raises(BadRequestError, match="tool name"):
            client.chat("x", tools=[{"type": "function", "function": {"name": "has space"}}])
        with pytest.raises(BadRequestError, match="named 'get_weather'"):
            client.chat("x", tools=[get_weather, get_weather])
        with pytest.raises(BadRequestError, match="parallel_tool_calls"):
            client.chat("x", tools=[get_weather], parallel_tool_calls="yes")  # type: ignore[arg-type]
    assert len(sim.chat_requests) == before


def test_tool_choice_and_parallel_flag_reach_the_body(sim: ErnieSimulator) -> None:
    with Ernie(**client_args(sim, "qianfan")) as client:
        client.chat("x", tools=[get_weather], tool_choice=get_weather, parallel_tool_calls=False)
        body = sim.chat_requests[-1].json
        assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assert body["parallel_tool_calls"] is False
        client.chat("x", tools=[get_weather], tool_choice="required")
        assert sim.chat_requests[-1].json["tool_choice"] == "required"
        client.chat("x")  # no tools: nothing about tools in the body
        assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(sim.chat_requests[-1].json)


def test_v1_function_role_and_function_call_are_translated() -> None:
    from ernie_widget.client.messages import normalize_messages, v1_messages

    history = normalize_messages([
        {"role": "user", "content": "北京天气?"},
        {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": '{"city":"北京"}'}},
        {"role": "function", "name": "get_weather", "content": {"temp": 20}},
    ])
    assert history[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert history[2] == {"role": "tool", "tool_call_id": history[1]["tool_calls"][0]["id"], "name": "get_weather",
                          "content": '{"temp": 20}'}
    _, v1 = v1_messages(history)
    assert v1[1] == {"role": "assistant", "content": "", "function_call": {"name": "get_weather",
                                                                           "arguments": '{"city":"北京"}'}}
    assert v1[2] == {"role": "function", "name": "get_weather", "content": '{"temp": 20}'}


def test_a_callable_describes_itself() -> None:
    spec = tool(get_weather).spec()["function"]
    assert spec["description"] == "The weather forecast for a city."
    props = spec["parameters"]["properties"]
    assert props["city"] == {"type": "string", "description": "The city, e.g. 北京."}
    assert props["unit"]["enum"] == ["c", "f"] and props["unit"]["default"] == "c"
    assert props["days"]["type"] == "integer" and spec["parameters"]["required"] == ["city"]

    def numpy_style(x: float, title: str, tags: list[str] | None = None) -> None:
        """Numpy documented.

        Parameters
        ----------
        x : float
            The x value,
            over two lines.
        title : str
            A title (a parameter named "title" must survive the schema clean-up).
        """

    p = tool(numpy_style).spec()["function"]["parameters"]
    assert p["properties"]["x"]["description"] == "The x value, over two lines."
    assert "title" in p["properties"] and p["required"] == ["x", "title"]

    def rest_style(a: list[int]) -> int:
        """reST documented.

        :param a: numbers to add
        :returns: their sum
        """
        return sum(a)

    t = tool(name="add", description="Add numbers.")(rest_style)
    assert t.spec()["function"]["name"] == "add"
    assert t.spec()["function"]["parameters"]["properties"]["a"]["description"] == "numbers to add"
    assert t.arguments({"a": ["1", 2]}) == {"a": [1, 2]}  # converted by the signature's types
    with pytest.raises(ValueError, match="a: Field required"):
        t.arguments({})


def test_the_openai_sdk_assembles_the_same_calls(sim: ErnieSimulator) -> None:
    import openai  # a dev dependency
    from openai.lib.streaming.chat import ChatCompletionStreamState

    spec = tool(get_weather).spec()
    for provider in ("openai", "qianfan"):
        for style in ("fragments", "interleaved", "whole", "one_chunk"):
            sim.push(Answer(tool_calls=CALLS, tool_call_style=style, chunk_size=3))
            args = client_args(sim, provider)
            sdk = openai.OpenAI(base_url=args["base_url"], api_key=args["api_key"] or "none",
                                max_retries=0)
            state = ChatCompletionStreamState()
            for chunk in sdk.chat.completions.create(model="ernie-4.5-turbo-128k", stream=True, tools=[spec],
                                                     messages=[{"role": "user", "content": "天气"}]):
                state.handle_chunk(chunk)
            theirs = [(c.id, c.function.name, c.function.arguments)
                      for c in state.get_final_completion().choices[0].message.tool_calls or []]
            sim.push(Answer(tool_calls=CALLS, tool_call_style=style, chunk_size=3))
            ours = collect(sim, "sync", provider, "天气", stream_kw={"tools": [get_weather]}).reply
            assert ours is not None
            assert theirs == [(c.id, c.name, c.arguments) for c in ours.tool_calls], (provider, style)


def test_calls_survive_record_and_replay(sim: ErnieSimulator, tmp_path: Any) -> None:
    cassette = tmp_path / "tools.jsonl"
    sim.push(Answer(tool_calls=CALLS))
    args = client_args(sim, "qianfan")
    import os

    os.environ["ERNIE_CASSETTE"], os.environ["ERNIE_CASSETTE_MODE"] = str(cassette), "record"
    try:
        with Ernie(**args) as client:
            live = client.chat("天气", tools=[get_weather])
    finally:
        del os.environ["ERNIE_CASSETTE"], os.environ["ERNIE_CASSETTE_MODE"]
    with Ernie(cassette=str(cassette)) as replayed:
        again = replayed.chat("天气", tools=[get_weather])
    assert again.tool_calls == live.tool_calls and all(isinstance(c, ToolCall) for c in again.tool_calls)
    assert again.finish_reason == "tool_calls"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_v1_functions_and_function_call(sim: ErnieSimulator, mode: str) -> None:
    sim.push(Answer(tool_calls=CALLS[:1], thoughts="用户想知道天气，我需要调用 get_weather。", chunk_size=2))
    out = collect(sim, mode, "qianfan-v1", "北京天气?", stream_kw={"tools": [get_weather]})
    assert out.error is None and out.reply is not None
    (call,) = out.reply.tool_calls
    assert (call.name, call.parsed, call.thoughts) == ("get_weather", CALLS[0]["arguments"],
                                                       "用户想知道天气，我需要调用 get_weather。")
    assert out.reply.finish_reason == "tool_calls" and out.types.count("tool_call") == 1
    body = sim.chat_requests[-1].json
    assert "tools" not in body
    assert body["functions"] == [{"name": "get_weather", "description": "The weather forecast for a city.",
                                  "parameters": tool(get_weather).parameters}]


def test_v1_function_round_trip_through_run_tools(sim: ErnieSimulator) -> None:
    sim.push(Answer(tool_calls=CALLS[:1]), Answer(text="北京 20 度。"))
    with Ernie(**client_args(sim, "qianfan-v1")) as client:
        run = client.run_tools("北京天气?", [get_weather])
        assert run.text == "北京 20 度。"
        sent = sim.chat_requests[-1].json["messages"]
        assert sent[1] == {"role": "assistant", "content": "",
                           "function_call": {"name": "get_weather", "arguments": json.dumps(CALLS[0]["arguments"],
                                                                                           ensure_ascii=False)}}
        assert sent[2] == {"role": "function", "name": "get_weather", "content": "北京: 20°C for 3 day(s)"}
        with pytest.raises(BadRequestError, match="parallel_tool_calls"):
            client.chat("x", tools=[get_weather], parallel_tool_calls=True)


def test_v1_unstreamed_function_call(sim: ErnieSimulator) -> None:
    # Baidu's mock server answers a body with functions with one whole function_call object
    sim.push(Answer(tool_calls=CALLS[:1], thoughts="查天气"))

    async def main() -> Any:
        async with AsyncErnie(**client_args(sim, "qianfan-v1")) as client:
            async with client.unstreamed("北京天气?", tools=[get_weather]) as s:
                [ev async for ev in s]
            return s.reply

    reply = asyncio.run(main())
    assert sim.chat_requests[-1].json.get("stream") is not True
    assert [(c.name, c.parsed, c.thoughts) for c in reply.tool_calls] == [("get_weather", CALLS[0]["arguments"], "查天气")]
    assert reply.finish_reason == "tool_calls"


# -- hostile fragments -------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ernie_widget.client.tool_calls import ToolCallAssembler  # noqa: E402

_ANY = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=6)
_FRAGMENT = st.fixed_dictionaries({}, optional={
    "index": st.integers(-2, 5) | _ANY, "id": st.sampled_from(["a", "b", ""]) | _ANY, "type": _ANY,
    "function": st.fixed_dictionaries({}, optional={"name": st.sampled_from(["f", "g"]) | _ANY,
                                                   "arguments": st.text(max_size=10) | _ANY}) | _ANY,
    "thoughts": _ANY})


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_FRAGMENT | _ANY, max_size=4), max_size=8))
def test_any_fragments_assemble_without_raising(chunks: list[list[Any]]) -> None:
    assembler = ToolCallAssembler()
    for fragments in chunks:
        for delta in assembler.feed(fragments):
            assert isinstance(delta.arguments, str) and delta.index >= 0
    for call in assembler.calls():
        assert isinstance(call.id, str) and isinstance(call.name, str) and isinstance(call.arguments, str)
        assert (call.parsed is None) == (call.error is not None)


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4), st.data())
def test_any_split_of_the_arguments_assembles_to_the_same_text(arguments: dict[str, Any], data: Any) -> None:
    text = json.dumps(arguments, ensure_ascii=False)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assembler = ToolCallAssembler()
    assembler.feed([{"index": 0, "id": "x", "function": {"name": "f", "arguments": ""}}])
    for piece in pieces:
        assembler.feed([{"index": 0, "function": {"arguments": piece}}])
    (call,) = assembler.calls()
    assert call.arguments == text and call.parsed == arguments


def test_the_local_model_says_it_cannot_call_tools() -> None:
    with Ernie("local") as client:
        with pytest.raises(BadRequestError, match="cannot call tools") as info:
            client.chat("天气?", tools=[get_weather])
        assert "QIANFAN_API_KEY" in str(info.value)  # and says what would work
        with pytest.raises(BadRequestError):
            client.chat("想一想", enable_thinking=True)  # not silently dropped either
