"""Time limits, size limits, odd-but-valid wire bytes, closing, concurrency and RPM/TPM, history trimming."""

from __future__ import annotations

import asyncio
import threading

import pytest

try:  # tests/ may or may not be a package
    from tests.client_support import MODES, client_args, collect
except ImportError:
    from client_support import MODES, client_args, collect  # type: ignore[no-redef]

from ernie_widget.client import APITimeoutError, AsyncErnie, Ernie, IncompleteStreamError
from ernie_widget.client.limits import MemoryRateLimiter
from ernie_widget.testing import Fault

TEXT = "abcdefghijklmnop"


@pytest.fixture
def sim(ernie_simulator):
    ernie_simulator.set_answer(text=TEXT, chunk_size=2)
    return ernie_simulator


# -- time limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_no_response_within_timeout_is_an_api_timeout_error(sim, mode):
    sim.latency = 1.5
    out = collect(sim, mode, timeout=0.2, max_retries=0)
    assert isinstance(out.error, APITimeoutError)
    assert out.elapsed < 1.2


@pytest.mark.parametrize("mode", MODES)
def test_stalled_stream_hits_stream_idle_timeout_with_the_partial_text(sim, mode):
    sim.push(Fault.stall(after_chunks=2, seconds=5))
    out = collect(sim, mode, stream_idle_timeout=0.3)
    assert isinstance(out.error, APITimeoutError)
    assert "stream_idle_timeout" in out.error.message
    assert out.error.partial_text == TEXT[:4]
    assert 0.3 <= out.elapsed < 2.0


@pytest.mark.parametrize("mode", MODES)
def test_heartbeat_comments_do_not_reset_stream_idle_timeout(sim, mode):
    sim.push(Fault.stall(after_chunks=2, seconds=5, heartbeat=0.05))
    out = collect(sim, mode, stream_idle_timeout=0.4)
    assert isinstance(out.error, APITimeoutError)
    assert out.error.partial_text == TEXT[:4]
    assert out.elapsed < 2.0
    assert sim.chat_requests[-1].writes >= 4  # precondition: keep-alive comments really arrived meanwhile


@pytest.mark.parametrize("mode", MODES)
def test_endless_stream_hits_max_stream_seconds_with_the_partial_text(sim, mode):
    sim.push(Fault.endless(interval=0.01))
    out = collect(sim, mode, max_stream_seconds=0.5)
    assert isinstance(out.error, APITimeoutError)
    assert "max_stream_seconds" in out.error.message
    assert out.error.partial_text and out.error.partial_text == out.text
    assert 0.5 <= out.elapsed < 2.0
    assert len(sim.chat_requests) == 1  # text had arrived: not retried


def test_slow_consumer_with_data_waiting_does_not_hit_stream_idle_timeout(sim):
    # the idle limit is about the server going quiet; an answer already received must still be read
    async def run() -> str:
        async with AsyncErnie(**client_args(sim, "qianfan", stream_idle_timeout=0.2)) as client:
            parts = []
            async with client.stream("hi") as stream:
                async for ev in stream:
                    if not parts:
                        await asyncio.sleep(0.5)  # busy with the first event for longer than the limit
                    parts.append(ev.text)
            return "".join(parts)

    assert asyncio.run(run()) == TEXT


def test_max_stream_seconds_fires_at_the_next_read_after_a_busy_consumer(sim):
    sim.push(Fault.endless(interval=0.01))

    async def run() -> tuple[int, BaseException | None]:
        seen = 0
        async with AsyncErnie(**client_args(sim, "qianfan", max_stream_seconds=0.3)) as client:
            try:
                async with client.stream("hi") as stream:
                    async for _ in stream:
                        seen += 1
                        await asyncio.sleep(0.5)
            except APITimeoutError as err:
                return seen, err
            return seen, None

    seen, err = asyncio.run(run())
    assert isinstance(err, APITimeoutError) and "max_stream_seconds" in err.message
    assert seen <= 1  # the first read after the limit fails, although more events were waiting


# -- size limits and broken streams ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_event_over_1_mib_is_an_incomplete_stream_error(sim, mode):
    sim.push(Fault.oversized(after_chunks=2, size=1024 * 1024 + 100))
    out = collect(sim, mode)
    assert isinstance(out.error, IncompleteStreamError)
    assert out.error.partial_text == TEXT[:4]


@pytest.mark.parametrize("mode", MODES)
def test_event_under_1_mib_is_accepted(sim, mode):
    sim.push(Fault.oversized(after_chunks=2, size=900 * 1024))
    out = collect(sim, mode)
    assert out.error is None
    assert out.text == TEXT[:4] + "x" * (900 * 1024) + TEXT[4:]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1", "openai"])
def test_stream_without_its_end_signal_is_an_incomplete_stream_error(sim, mode, provider):
    sim.push(Fault.no_end(after_chunks=3))
    out = collect(sim, mode, provider)
    assert isinstance(out.error, IncompleteStreamError)
    assert out.error.partial_text == TEXT[:6]
    assert sim.chat_requests[-1].chunks_sent == 3  # precondition: three chunks, then the body just ended


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1"])
def test_cut_connection_is_an_incomplete_stream_error(sim, mode, provider):
    sim.push(Fault.cut(after_chunks=3))
    out = collect(sim, mode, provider)
    assert isinstance(out.error, IncompleteStreamError)
    assert out.error.partial_text == TEXT[:6]


# -- odd but valid bytes -----------------------------------------------------------------------------

MIXED = "中文，English，emoji 🎉🚀，日本語テキスト，한국어 — done."


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1", "openai"])
def test_crlf_line_endings_give_the_exact_text(sim, mode, provider):
    sim.set_answer(text=MIXED, chunk_size=3, crlf=True)
    out = collect(sim, mode, provider)
    assert out.error is None and out.text == MIXED


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1"])
def test_gzip_body_gives_the_exact_text(sim, mode, provider):
    sim.set_answer(text=MIXED * 20, chunk_size=5, gzip=True)
    out = collect(sim, mode, provider)
    assert "gzip" in sim.chat_requests[-1].headers["accept-encoding"]  # precondition: the sim compresses
    assert out.error is None and out.text == MIXED * 20


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan", "qianfan-v1"])
def test_utf8_split_mid_character_gives_the_exact_text(sim, mode, provider):
    sim.set_answer(text=MIXED, chunk_size=4, split_utf8=True)
    out = collect(sim, mode, provider)
    req = sim.chat_requests[-1]
    assert req.split_mid_char and req.writes > len(req.events)  # precondition: characters really were split
    assert out.error is None and out.text == MIXED


# -- closing -----------------------------------------------------------------------------------------


def _disconnected(sim) -> bool:
    return sim.wait_for(lambda: sim.chat_requests and sim.chat_requests[-1].disconnected, timeout=1.0)


def test_sync_close_closes_the_http_response(sim):
    sim.push(Fault.endless(interval=0.01))
    with Ernie(**client_args(sim, "qianfan")) as client:
        stream = client.stream("hi")
        assert next(iter(stream)).type == "text"
        stream.close()
        assert _disconnected(sim)


def test_sync_context_manager_closes_the_http_response(sim):
    sim.push(Fault.endless(interval=0.01))
    with Ernie(**client_args(sim, "qianfan")) as client:
        with client.stream("hi") as stream:
            for _ in stream:
                break
        assert _disconnected(sim)


def test_async_close_closes_the_http_response(sim):
    sim.push(Fault.endless(interval=0.01))

    async def run() -> bool:
        async with AsyncErnie(**client_args(sim, "qianfan")) as client:
            stream = client.stream("hi")
            assert (await stream.__anext__()).type == "text"
            await stream.close()
            return await asyncio.to_thread(_disconnected, sim)

    assert asyncio.run(run())


def test_async_context_manager_closes_the_http_response(sim):
    sim.push(Fault.endless(interval=0.01))

    async def run() -> bool:
        async with AsyncErnie(**client_args(sim, "qianfan")) as client:
            async with client.stream("hi") as stream:
                async for _ in stream:
                    break
            return await asyncio.to_thread(_disconnected, sim)

    assert asyncio.run(run())


def test_closed_sync_stream_stops_iterating(sim):
    sim.push(Fault.endless(interval=0.01))
    with Ernie(**client_args(sim, "qianfan")) as client:
        stream = client.stream("hi")
        next(iter(stream))
        stream.close()
        assert list(stream) == []


# -- concurrency and RPM / TPM -----------------------------------------------------------------------


def test_async_max_concurrency_bounds_requests_in_flight(sim):
    sim.set_answer(text=TEXT, chunk_size=4, delay=0.02)

    async def run() -> list[str]:
        async with AsyncErnie(**client_args(sim, "qianfan", max_concurrency=2)) as client:
            replies = await asyncio.gather(*(client.chat(f"q{i}") for i in range(6)))
            return [r.text for r in replies]

    assert asyncio.run(run()) == [TEXT] * 6
    assert sim.peak_in_flight == 2


def test_sync_max_concurrency_bounds_requests_from_many_threads(sim):
    sim.set_answer(text=TEXT, chunk_size=4, delay=0.02)
    texts: list[str] = []
    with Ernie(**client_args(sim, "qianfan", max_concurrency=2)) as client:
        threads = [threading.Thread(target=lambda: texts.append(client.chat("q").text)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert texts == [TEXT] * 6
    assert sim.peak_in_flight == 2


WINDOW = 0.5


@pytest.fixture
def short_window(monkeypatch):
    """A half-second rate-limit window instead of a minute, so the spreading is measurable quickly."""
    monkeypatch.setattr(MemoryRateLimiter, "window", WINDOW)


def _assert_spread(sim, per_window: int) -> None:
    starts = [r.started for r in sim.chat_requests]
    assert starts[per_window - 1] - starts[0] < WINDOW - 0.1  # the first `per_window` go at once
    for early, late in zip(starts, starts[per_window:], strict=False):
        assert late - early >= WINDOW - 0.1  # any per_window+1 requests span (about) a whole window


@pytest.mark.parametrize("mode", MODES)
def test_rpm_spreads_requests_over_the_window(sim, short_window, mode):
    args = client_args(sim, "qianfan", rpm=2)
    if mode == "sync":
        with Ernie(**args) as client:
            texts = [client.chat(f"q{i}").text for i in range(5)]
    else:
        async def run() -> list[str]:
            async with AsyncErnie(**args) as client:
                return [r.text for r in await asyncio.gather(*(client.chat(f"q{i}") for i in range(5)))]

        texts = asyncio.run(run())
    assert texts == [TEXT] * 5
    assert len(sim.chat_requests) == 5
    _assert_spread(sim, per_window=2)


@pytest.mark.parametrize("mode", MODES)
def test_tpm_charges_the_reported_usage(sim, short_window, mode):
    # Each answer reports 248 tokens; with tpm=250 the next request (estimated at a few tokens) must wait
    # for the previous charge to leave the window.
    sim.set_answer(text=TEXT, usage={"prompt_tokens": 240, "completion_tokens": 8})
    args = client_args(sim, "qianfan", tpm=250)
    if mode == "sync":
        with Ernie(**args) as client:
            for i in range(3):
                client.chat(f"q{i}")
    else:
        async def run() -> None:
            async with AsyncErnie(**args) as client:
                for i in range(3):
                    await client.chat(f"q{i}")

        asyncio.run(run())
    _assert_spread(sim, per_window=1)


def test_without_limits_requests_are_not_delayed(sim, short_window):
    with Ernie(**client_args(sim, "qianfan")) as client:
        for i in range(5):
            client.chat(f"q{i}")
    starts = [r.started for r in sim.chat_requests]
    assert starts[-1] - starts[0] < WINDOW


# -- history trimming --------------------------------------------------------------------------------


def _long_history(turns: int, size: int) -> list[dict[str, str]]:
    history = [{"role": "system", "content": "你是一个简洁的助手。"}]
    for i in range(turns):
        history += [{"role": "user", "content": f"问题{i} " + "问" * size},
                    {"role": "assistant", "content": f"回答{i} " + "答" * size}]
    history.append({"role": "user", "content": "最后的问题"})
    return history


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", ["qianfan-v1", "qianfan"])
def test_history_beyond_the_input_limit_is_trimmed_keeping_the_system_prompt(sim, mode, provider):
    history = _long_history(turns=12, size=1500)  # ~36,000 characters; ERNIE-Speed-8K takes 11,200
    out = collect(sim, mode, provider, history, model="ERNIE-Speed-8K")
    assert out.error is None
    assert out.reply.trimmed_turns > 0
    body = sim.chat_requests[-1].json
    sent = body["messages"]
    if provider == "qianfan-v1":
        assert body["system"] == "你是一个简洁的助手。"
    else:
        assert sent[0] == history[0]
        sent = sent[1:]
    assert sent == history[len(history) - len(sent):]  # the newest turns, in order
    assert sent[-1]["content"] == "最后的问题"
    assert len(sent) == len(history) - 1 - out.reply.trimmed_turns
    assert sum(len(m["content"]) for m in sent) + len("你是一个简洁的助手。") <= 11200


@pytest.mark.parametrize("mode", MODES)
def test_history_within_the_input_limit_is_sent_whole(sim, mode):
    history = _long_history(turns=2, size=100)
    out = collect(sim, mode, "qianfan", history, model="ERNIE-Speed-8K")
    assert out.reply.trimmed_turns == 0
    assert sim.chat_requests[-1].json["messages"] == history
