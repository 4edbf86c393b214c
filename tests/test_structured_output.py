"""`schema=`: JSON asked for per surface, validated into Reply.parsed, one repair round trip, a named error."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import pydantic
import pytest

from ernie_widget.client import AsyncErnie, BadRequestError, Ernie, StructuredOutputError
from ernie_widget.testing import Answer, ErnieSimulator
from tests.client_support import client_args


class Person(pydantic.BaseModel):
    name: str
    age: int
    role: Literal["engineer", "manager"] = "engineer"


PERSON_SCHEMA = {"title": "Person", "type": "object", "required": ["name", "age"],
                 "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}}


@pytest.fixture(scope="module")
def sim() -> Any:
    with ErnieSimulator() as s:
        yield s


@pytest.mark.parametrize("provider", ["qianfan", "aistudio", "openai"])
def test_json_schema_surfaces(sim: ErnieSimulator, provider: str) -> None:
    sim.push(Answer(text='{"name": "李雷", "age": 30}'))
    with Ernie(**client_args(sim, provider)) as client:
        reply = client.chat("李雷，30 岁，工程师", schema=Person)
    assert reply.parsed == Person(name="李雷", age=30)
    fmt = sim.chat_requests[-1].json["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Person"
    assert fmt["json_schema"]["schema"]["required"] == ["name", "age"]
    assert sim.chat_requests[-1].json["messages"][0]["role"] == "user"  # no instruction needed


def test_v1_falls_back_to_json_object_and_an_instruction(sim: ErnieSimulator) -> None:
    sim.push(Answer(text='```json\n{"name": "Han", "age": 41}\n```'))  # a fenced answer is accepted
    with Ernie(**client_args(sim, "qianfan-v1")) as client:
        reply = client.chat("Han, 41", schema=PERSON_SCHEMA, system="Extract people.")
    assert reply.parsed == {"name": "Han", "age": 41}
    body = sim.chat_requests[-1].json
    assert body["response_format"] == "json_object"
    assert body["system"].startswith("Extract people.") and '"required": ["name", "age"]' in body["system"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_one_repair_round_trip(sim: ErnieSimulator, mode: str) -> None:
    sim.push(Answer(text='{"name": "李雷", "age": "thirty"}'), Answer(text='{"name": "李雷", "age": 30}'))
    start = len(sim.chat_requests)
    if mode == "sync":
        with Ernie(**client_args(sim, "qianfan")) as client:
            reply = client.chat("李雷 30", schema=Person)
    else:
        async def main() -> Any:
            async with AsyncErnie(**client_args(sim, "qianfan")) as client:
                return await client.chat("李雷 30", schema=Person)

        reply = asyncio.run(main())
    assert reply.parsed == Person(name="李雷", age=30)
    assert len(sim.chat_requests) - start == 2
    repair = sim.chat_requests[-1].json["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"name": "李雷", "age": "thirty"}'}
    assert "age: Input should be a valid integer" in repair[-1]["content"]


def test_still_invalid_raises_with_the_raw_text(sim: ErnieSimulator) -> None:
    sim.push(Answer(text="我不知道"), Answer(text='{"name": 1}'))
    with Ernie(**client_args(sim, "qianfan")) as client, pytest.raises(StructuredOutputError) as info:
        client.chat("?", schema=PERSON_SCHEMA)
    assert info.value.raw_text == '{"name": 1}'
    assert any("age" in p and "required" in p for p in info.value.problems)
    assert any(p.startswith("name:") for p in info.value.problems)
    assert "回答不符合 schema" in str(info.value)


def test_a_stream_validates_at_its_end(sim: ErnieSimulator) -> None:
    sim.push(Answer(text='{"name": "A", "age": 1}', chunk_size=3), Answer(text="not json"))
    with Ernie(**client_args(sim, "qianfan")) as client:
        with client.stream("?", schema=Person) as s:
            text = "".join(ev.text for ev in s if ev.type == "text")
        assert json.loads(text) == {"name": "A", "age": 1} and s.reply is not None
        assert s.reply.parsed == Person(name="A", age=1)
        with client.stream("?", schema=Person) as s, pytest.raises(StructuredOutputError):
            list(s)
        assert s.reply is not None and s.reply.text == "not json" and s.reply.parsed is None


def test_bad_schemas_are_refused_before_sending(sim: ErnieSimulator) -> None:
    before = len(sim.chat_requests)
    with Ernie(**client_args(sim, "qianfan")) as client:
        with pytest.raises(BadRequestError, match="not a valid JSON Schema"):
            client.chat("?", schema={"type": "objekt"})
        with pytest.raises(BadRequestError, match="pydantic model class or a JSON Schema dict"):
            client.chat("?", schema="Person")
        with pytest.raises(BadRequestError, match="not both"):
            client.chat("?", schema=Person, response_format={"type": "json_object"})
    assert len(sim.chat_requests) == before


def test_response_format_passes_through(sim: ErnieSimulator) -> None:
    sim.push(Answer(text='{"a": 1}'))
    with Ernie(**client_args(sim, "qianfan")) as client:
        reply = client.chat("?", response_format={"type": "json_object"})
    assert sim.chat_requests[-1].json["response_format"] == {"type": "json_object"}
    assert reply.parsed is None  # nothing asked to be validated


# -- over a DataFrame -------------------------------------------------------------------------------


def test_map_adds_one_typed_column_per_field(sim: ErnieSimulator, tmp_path: Any) -> None:
    import pandas as pd

    people = pd.DataFrame({"text": ["李雷 30 岁", "韩梅梅 28 岁", "Jim"], "name": ["x", "y", "z"]})
    answers = ['{"name": "李雷", "age": 30}', '{"name": "韩梅梅", "age": 28, "role": "manager"}', "no idea"]
    with Ernie(**client_args(sim, "qianfan")) as client:
        for a in answers:
            sim.push(Answer(text=a))
        sim.push(Answer(text="still no idea"))  # the third row's repair round trip
        out = client.map("从这句话提取人物：{text}", people, schema=Person, concurrency=1, progress=False,
                         cache=str(tmp_path / "rows.sqlite"))
    assert list(out["name"]) == ["x", "y", "z"]  # the frame's own column is untouched
    assert list(out["ernie_name"][:2]) == ["李雷", "韩梅梅"] and out["ernie_name"].isna()[2]
    assert str(out["ernie_age"].dtype) == "Int64" and list(out["ernie_age"][:2]) == [30, 28]
    assert list(out["ernie_role"][:2]) == ["engineer", "manager"]
    assert out["ernie_error"][2] is not None and "schema" in out["ernie_error"][2]
    body = sim.chat_requests[-1].json
    assert body["response_format"]["json_schema"]["name"] == "Person"

    # a re-run answers the finished rows from the cache, parsed again from the stored text
    before = len(sim.chat_requests)
    sim.push(Answer(text='{"name": "Jim", "age": 12}'))
    with Ernie(**client_args(sim, "qianfan")) as client:
        again = client.map("从这句话提取人物：{text}", people, schema=Person, concurrency=1, progress=False,
                           cache=str(tmp_path / "rows.sqlite"))
    assert len(sim.chat_requests) - before == 1
    assert list(again["ernie_age"]) == [30, 28, 12] and again["ernie_error"].isna().all()


def test_map_with_a_json_schema_dict(sim: ErnieSimulator) -> None:
    import pandas as pd

    sim.push(Answer(text='{"name": "A", "age": 1}'), Answer(text='{"name": "B", "age": 2}'))
    with Ernie(**client_args(sim, "qianfan-v1")) as client:
        result = client.map(["a", "b"], schema=PERSON_SCHEMA, concurrency=1, progress=False)
        frame = client.map("{x}", pd.DataFrame({"x": ["c"]}), schema=PERSON_SCHEMA, progress=False)
    assert [r.parsed for r in result] == [{"name": "A", "age": 1}, {"name": "B", "age": 2}]
    assert list(frame.columns[-2:]) == ["ernie_name", "ernie_age"]


def test_an_unscripted_answer_matches_the_schema_it_was_asked_for(sim: ErnieSimulator) -> None:
    # the simulator answers like a model constrained to the schema (a deterministic example) where json_schema is sent
    for provider in ("qianfan", "aistudio", "openai"):
        with Ernie(**client_args(sim, provider)) as client:
            reply = client.chat("李雷 30", schema=Person)
        assert isinstance(reply.parsed, Person), provider
    with Ernie(**client_args(sim, "qianfan")) as client:
        nested = client.chat("?", schema={"type": "object", "properties": {"tags": {"type": "array", "items": {
            "type": "string"}}, "ok": {"type": "boolean"}}, "required": ["tags", "ok"]})
    assert nested.parsed == {"tags": ["示例"], "ok": True}
