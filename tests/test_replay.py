"""Record and replay: answers recorded from the protocol simulator, then served offline from the cassette."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ernie_widget.client import (
    AsyncErnie,
    BadRequestError,
    ConfigurationError,
    Ernie,
    IncompleteStreamError,
    StreamEvent,
)
from ernie_widget.client.providers.replay import CassetteMissError, load_cassette, request_key
from ernie_widget.testing import Answer, ErnieSimulator, Fault

API_KEY = "bce-v3/ALTAK-Rec0rdKeyAbcdef/9f8e7d6c5b4a39281706f5e4d3c2b1a0"
SECRET_PART = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


@pytest.fixture
def cassette(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("ERNIE_REPLAY_SPEED", raising=False)
    return tmp_path / "answers.jsonl"


@contextmanager
def recording(monkeypatch: pytest.MonkeyPatch, path: Path) -> Iterator[ErnieSimulator]:
    """A live (simulated) Qianfan v2 with recording on; afterwards the simulator is gone and so is the key."""
    with monkeypatch.context() as m, ErnieSimulator() as sim:
        for key, value in sim.env("qianfan", api_key=API_KEY).items():
            m.setenv(key, value)
        m.setenv("ERNIE_CASSETTE", str(path))
        m.setenv("ERNIE_CASSETTE_MODE", "record")
        yield sim


def _same(a: list[StreamEvent], b: list[StreamEvent]) -> bool:
    return [(e.type, e.text, e.usage, e.finish_reason, e.model, e.request_id) for e in a] == \
           [(e.type, e.text, e.usage, e.finish_reason, e.model, e.request_id) for e in b]


def test_replay_gives_the_recorded_events_offline(monkeypatch: pytest.MonkeyPatch, cassette: Path) -> None:
    with recording(monkeypatch, cassette) as sim:
        sim.set_answer(text="Paris is the capital of France.", reasoning="The user asks about geography.",
                       chunk_size=5)
        live = list(Ernie().stream("What is the capital of France?", temperature=0.3))
        assert len(sim.chat_requests) == 1
    # the simulator is stopped: anything but the cassette would fail to connect
    replayed = list(Ernie(provider="replay", cassette=str(cassette)).stream(
        "What is the capital of France?", temperature=0.3))
    assert _same(live, replayed)
    assert [e.type for e in replayed][:2] == ["reasoning", "reasoning"]
    assert replayed[-1].type == "finish"
    reply = Ernie(provider="replay", cassette=str(cassette)).chat("What is the capital of France?", temperature=0.3)
    assert reply.text == "Paris is the capital of France."
    assert reply.reasoning == "The user asks about geography."
    assert reply.model == "ernie-4.5-turbo-32k"  # whatever was recorded
    assert reply.provider == "replay"


def test_replay_mode_from_the_environment_needs_no_key(monkeypatch: pytest.MonkeyPatch, cassette: Path) -> None:
    with recording(monkeypatch, cassette):
        Ernie().chat("hello")
    monkeypatch.setenv("ERNIE_CASSETTE", str(cassette))
    monkeypatch.setenv("ERNIE_CASSETTE_MODE", "replay")
    client = Ernie()
    assert client.provider == "replay"
    assert client.chat("hello").text == "你好！You said: hello"


def test_the_async_client_replays_too(monkeypatch: pytest.MonkeyPatch, cassette: Path) -> None:
    with recording(monkeypatch, cassette):
        Ernie().chat("hello async")

    async def main() -> str:
        async with AsyncErnie(cassette=str(cassette)) as client:
            return (await client.chat("hello async")).text

    assert asyncio.run(main()) == "你好！You said: hello async"


def test_an_unrecorded_request_names_the_closest_one_and_how_to_record(
    monkeypatch: pytest.MonkeyPatch, cassette: Path
) -> None:
    with recording(monkeypatch, cassette):
        client = Ernie()
        client.chat("Summarise the sales table by region")
        client.chat("Write a haiku about autumn")
    replay = Ernie(provider="replay", cassette=str(cassette))
    with pytest.raises(CassetteMissError) as info:
        replay.chat("Summarise the sales table by country")
    message = str(info.value)
    assert isinstance(info.value, BadRequestError)
    assert "Summarise the sales table by region" in message
    assert "ERNIE_CASSETTE_MODE=record" in message and str(cassette) in message
    assert "\n" not in message
    with pytest.raises(CassetteMissError, match=r"temperature: None → 0\.9"):
        replay.chat("Write a haiku about autumn", temperature=0.9)


def test_the_cassette_never_contains_the_key(monkeypatch: pytest.MonkeyPatch, cassette: Path) -> None:
    with recording(monkeypatch, cassette) as sim:
        Ernie().chat("hello")
        Ernie().chat(f"my key is {API_KEY}, keep it safe")  # even a key pasted into a prompt
        assert sim.chat_requests[0].headers  # the key did travel in the request headers
    text = cassette.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 2
    assert API_KEY not in text and SECRET_PART not in text
    assert "***" in text
    # replay still matches: the key is computed from the live request, not from the file
    assert Ernie(provider="replay", cassette=str(cassette)).chat(f"my key is {API_KEY}, keep it safe").text


def test_each_line_has_the_documented_shape(monkeypatch: pytest.MonkeyPatch, cassette: Path) -> None:
    with recording(monkeypatch, cassette):
        Ernie().chat("shape", max_tokens=50)
    (entry,) = load_cassette(str(cassette))
    assert entry["key"] == request_key([{"role": "user", "content": "shape"}], {"max_tokens": 50})
    assert entry["request"] == {"messages": [{"role": "user", "content": "shape"}],
                                "params": {"max_tokens": 50, "model": "ernie-4.5-turbo-32k"}}
    assert entry["provider"] == "qianfan"
    assert entry["reply"]["model"] == "ernie-4.5-turbo-32k" and entry["reply"]["request_id"]
    assert entry["recorded_at"].endswith("Z")
    times = [e["t"] for e in entry["events"]]
    assert times == sorted(times) and times[0] >= 0
    assert [e["type"] for e in entry["events"]][-2:] == ["usage", "finish"]


def test_replay_at_recorded_speed_takes_about_the_recorded_time(
    monkeypatch: pytest.MonkeyPatch, cassette: Path
) -> None:
    with recording(monkeypatch, cassette) as sim:
        sim.set_answer(text="one two three four five six", chunk_size=3, delay=0.05)
        Ernie().chat("slowly")
    recorded = load_cassette(str(cassette))[0]["events"][-1]["t"]
    assert recorded > 0.4

    def timed(speed: str | None) -> float:
        if speed is None:
            monkeypatch.delenv("ERNIE_REPLAY_SPEED", raising=False)
        else:
            monkeypatch.setenv("ERNIE_REPLAY_SPEED", speed)
        client = Ernie(provider="replay", cassette=str(cassette))
        start = time.monotonic()
        assert client.chat("slowly").text == "one two three four five six"
        return time.monotonic() - start

    at_speed = timed("recorded")
    assert recorded * 0.9 <= at_speed <= recorded + 0.5
    twice = timed("2")
    assert recorded / 2 * 0.9 <= twice <= recorded / 2 + 0.5
    assert timed(None) < 0.2  # instant by default


def test_a_bad_replay_speed_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, cassette: Path) -> None:
    cassette.write_text("")
    monkeypatch.setenv("ERNIE_REPLAY_SPEED", "fast")
    with pytest.raises(ConfigurationError, match="ERNIE_REPLAY_SPEED"):
        Ernie(provider="replay", cassette=str(cassette))


def test_repeated_requests_are_served_in_order_then_the_last_again(
    monkeypatch: pytest.MonkeyPatch, cassette: Path
) -> None:
    with recording(monkeypatch, cassette) as sim:
        sim.push(Answer(text="first take"), Answer(text="second take"))
        client = Ernie()
        assert [client.chat("again").text for _ in range(2)] == ["first take", "second take"]
    replay = Ernie(provider="replay", cassette=str(cassette))
    assert [replay.chat("again").text for _ in range(3)] == ["first take", "second take", "second take"]
    # a new client starts from the first recording again: a re-run notebook gets the same answers
    assert Ernie(provider="replay", cassette=str(cassette)).chat("again").text == "first take"


def test_only_completed_requests_are_recorded(monkeypatch: pytest.MonkeyPatch, cassette: Path) -> None:
    with recording(monkeypatch, cassette) as sim:
        client = Ernie()
        sim.push(Fault.status(400))
        with pytest.raises(BadRequestError):
            client.chat("rejected")
        sim.push(Fault.cut(after_chunks=2))
        with pytest.raises(IncompleteStreamError):
            client.chat("cut off")
        sim.set_answer(text="a long answer " * 20, chunk_size=2, delay=0.01)
        with client.stream("stopped early") as s:
            next(iter(s))
        client.chat("complete")
    prompts = [e["request"]["messages"][-1]["content"] for e in load_cassette(str(cassette))]
    assert prompts == ["complete"]
    assert prompts[-1] == "complete"


def test_images_are_stored_as_hashes_and_still_match(monkeypatch: pytest.MonkeyPatch, cassette: Path) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40).decode()

    def ask(data: str) -> list[dict[str, object]]:
        return [{"role": "user", "content": [{"type": "text", "text": "what is in this picture?"},
                                             {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]}]

    with recording(monkeypatch, cassette):
        Ernie().chat(ask(png))
    text = cassette.read_text(encoding="utf-8")
    assert png[:200] not in text and "sha256" in text
    replay = Ernie(provider="replay", cassette=str(cassette))
    assert replay.chat(ask(png)).text
    with pytest.raises(CassetteMissError):
        replay.chat(ask(png[:-8] + "AAAAAAAA"))


def test_concurrent_recording_writes_whole_lines(monkeypatch: pytest.MonkeyPatch, cassette: Path) -> None:
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        async def many() -> None:
            async with AsyncErnie() as client:
                await asyncio.gather(*(client.chat(f"worker {worker} question {i} " + "x" * 3000) for i in range(6)))

        try:
            asyncio.run(many())
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    with recording(monkeypatch, cassette) as sim:
        sim.set_answer(text="answer " * 200, chunk_size=50)
        threads = [threading.Thread(target=run, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors
    lines = cassette.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 18
    assert all(json.loads(line)["events"][-1]["type"] == "finish" for line in lines)


def test_a_torn_last_line_is_skipped(monkeypatch: pytest.MonkeyPatch, cassette: Path) -> None:
    with recording(monkeypatch, cassette):
        Ernie().chat("before the crash")
    with cassette.open("a", encoding="utf-8") as f:
        f.write('{"key": "abc", "request": {"messa')
    assert Ernie(provider="replay", cassette=str(cassette)).chat("before the crash").text


def test_replay_without_a_cassette_file_says_how_to_make_one(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.jsonl"
    with pytest.raises(ConfigurationError, match="ERNIE_CASSETTE_MODE=record") as info:
        Ernie(provider="replay", cassette=str(missing))
    assert str(missing) in str(info.value)
    with pytest.raises(ConfigurationError, match="ERNIE_CASSETTE"):
        Ernie(provider="replay")


@pytest.mark.parametrize(
    ("same", "params_a", "params_b"),
    [
        (True, {"temperature": None, "top_p": 0.5}, {"top_p": 0.5}),
        (True, {"top_p": 0.5, "max_tokens": 9}, {"max_tokens": 9, "top_p": 0.5}),
        (False, {"top_p": 0.5}, {"top_p": 0.6}),
        (False, {}, {"model": "ernie-x1-turbo-32k"}),
    ],
)
def test_the_key_ignores_unset_parameters_and_their_order(
    same: bool, params_a: dict[str, object], params_b: dict[str, object]
) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    key: Callable[[dict[str, object]], str] = lambda p: request_key(msgs, p)  # noqa: E731
    assert (key(params_a) == key(params_b)) is same
