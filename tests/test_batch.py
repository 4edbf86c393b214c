"""`client.map`: batches against the protocol simulator over real sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from ernie_widget.batch import BatchInterrupted, BatchResult, BatchRowError
from ernie_widget.client import AsyncErnie, BadRequestError, Ernie, ServerError
from ernie_widget.testing import Answer, ErnieSimulator, Fault, echo_answer

KEY = "bce-v3/ALTAK-batchtest/secret"


def make_client(sim: ErnieSimulator, **kwargs: object) -> Ernie:
    return Ernie("qianfan", api_key=KEY, base_url=sim.base_url("qianfan"), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def client(ernie_simulator: ErnieSimulator):
    with make_client(ernie_simulator) as c:
        yield c


def sent_prompts(sim: ErnieSimulator) -> list[str]:
    return [r.messages[-1]["content"] for r in sim.chat_requests]


# -- results and order ----------------------------------------------------------------------------


def test_rows_come_back_in_input_order_when_they_finish_out_of_order(client, ernie_simulator):
    # the first requests to arrive answer slowest, so completion order is roughly reversed
    n = 24
    ernie_simulator.push(*[Answer(chunk_size=2, delay=0.002 * (n - i)) for i in range(n)])
    prompts = [f"问题 {i}" for i in range(n)]
    result = client.map(prompts, concurrency=8, progress=False)

    assert isinstance(result, BatchResult)
    assert [r.index for r in result] == list(range(n))
    assert result.texts == [echo_answer(p) for p in prompts]
    assert [r.prompt for r in result] == prompts
    finish_order = [r.messages[-1]["content"] for r in sorted(ernie_simulator.chat_requests,
                                                                key=lambda r: r.finished or 0)]
    assert finish_order != prompts  # the batch really did finish out of order
    assert result.errors == {}
    assert result.usage_total.total_tokens == sum(r.usage.total_tokens for r in result if r.usage)
    assert result.usage_total.total_tokens > 0


@pytest.mark.parametrize("concurrency", [3, 12])
def test_concurrency_sets_rows_in_flight_even_beyond_the_clients_own_limit(ernie_simulator, concurrency):
    ernie_simulator.latency = 0.1
    with make_client(ernie_simulator, max_concurrency=4) as c:
        result = c.map([f"p{i}" for i in range(concurrency * 3)], concurrency=concurrency, progress=False)
    assert len(result.errors) == 0
    assert ernie_simulator.peak_in_flight == concurrency


def test_dataframe_in_gives_dataframe_out_with_new_columns(client, ernie_simulator):
    df = pd.DataFrame({"city": ["北京", "上海", "广州"], "n": [1, 2, 3]}, index=["a", "b", "c"])
    template = 'Say {greeting} to {city} ×{n}; keep {"json": {city}} and {nope} as text'
    out = client.map(template, df, namespace={"greeting": "你好", "city": "shadowed"}, progress=False)

    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == ["a", "b", "c"]
    assert list(out.columns) == ["city", "n", "ernie_text", "ernie_error", "ernie_tokens"]
    assert list(df.columns) == ["city", "n"]  # the input is not modified
    first = 'Say 你好 to 北京 ×1; keep {"json": 北京} and {nope} as text'
    assert sent_prompts(ernie_simulator)[0] == first or first in sent_prompts(ernie_simulator)
    assert out.loc["a", "ernie_text"] == echo_answer(first)
    assert out["ernie_error"].isna().all()
    assert str(out["ernie_tokens"].dtype) == "Int64"
    assert (out["ernie_tokens"] > 0).all()


def test_list_of_dicts_and_list_of_scalars_are_rows(client, ernie_simulator):
    result = client.map("Hi {name}", [{"name": "A"}, {"name": "B"}], progress=False)
    assert result.texts == [echo_answer("Hi A"), echo_answer("Hi B")]
    values = client.map("Translate: {value}", ["猫", "狗"], progress=False)
    assert values.texts == [echo_answer("Translate: 猫"), echo_answer("Translate: 狗")]
    frame = values.to_pandas()
    assert list(frame.columns) == ["prompt", "ernie_text", "ernie_error", "ernie_tokens", "cached"]
    assert frame.loc[1, "prompt"] == "Translate: 狗"


def test_system_prompt_and_params_reach_every_row(client, ernie_simulator):
    client.map(["a", "b"], system="你是翻译", temperature=0.3, max_tokens=50, progress=False)
    for req in ernie_simulator.chat_requests:
        assert req.messages[0] == {"role": "system", "content": "你是翻译"}
        assert req.json["temperature"] == 0.3
        assert req.json["max_completion_tokens"] == 50  # Qianfan v2 spelling


def test_async_twin(ernie_simulator):
    async def main() -> BatchResult:
        async with AsyncErnie("qianfan", api_key=KEY, base_url=ernie_simulator.base_url("qianfan")) as c:
            return await c.map([f"x{i}" for i in range(10)], concurrency=4, progress=False)

    result = asyncio.run(main())
    assert result.texts == [echo_answer(f"x{i}") for i in range(10)]


# -- failures ---------------------------------------------------------------------------------------


def test_a_retryable_failure_is_retried_per_row(ernie_simulator):
    # the client gives up at once (max_retries=0), so every retry seen here is the batch's own
    ernie_simulator.push(Fault.status(500), Fault.status(503), Fault.status(429, retry_after=0))
    with make_client(ernie_simulator, max_retries=0) as c:
        result = c.map([f"r{i}" for i in range(8)], concurrency=4, progress=False)
    assert result.errors == {}
    assert result.texts == [echo_answer(f"r{i}") for i in range(8)]
    counts = Counter(sent_prompts(ernie_simulator))
    assert len(ernie_simulator.chat_requests) == 11
    assert sorted(counts.values()) == [1] * 5 + [2] * 3


def test_a_row_cut_after_text_arrived_is_sent_again_whole(client, ernie_simulator):
    # the client cannot retry once text reached the caller; the batch can, since a row is all or nothing
    ernie_simulator.push(Fault.cut(after_chunks=2))
    result = client.map(["只有一行"], progress=False)
    assert result.texts == [echo_answer("只有一行")]
    assert len(ernie_simulator.chat_requests) == 2


def test_a_failing_row_is_kept_and_the_batch_goes_on(ernie_simulator):
    ernie_simulator.push(Fault.status(500), Fault.status(500), Fault.status(500))  # row 0, three attempts
    with make_client(ernie_simulator, max_retries=0) as c:
        result = c.map(["a", "", "c", "d"], concurrency=1, progress=False)
    assert set(result.errors) == {0, 1}
    assert isinstance(result.errors[0], ServerError)
    assert isinstance(result.errors[1], BadRequestError)  # the empty prompt never left the machine
    assert result.texts == [None, None, echo_answer("c"), echo_answer("d")]
    assert sent_prompts(ernie_simulator) == ["a", "a", "a", "c", "d"]
    frame = result.to_pandas()
    assert frame.loc[0, "ernie_error"].startswith("ServerError: ")
    assert pd.isna(frame.loc[0, "ernie_tokens"])


def test_on_error_raise_stops_the_batch_and_names_the_row(client, ernie_simulator):
    ernie_simulator.push(Answer(), Answer(), Fault.status(400))
    with pytest.raises(BatchRowError) as info:
        client.map([f"q{i}" for i in range(6)], concurrency=1, on_error="raise", progress=False)
    err = info.value
    assert err.index == 2 and err.prompt == "q2"
    assert isinstance(err.error, BadRequestError)
    assert "row 2" in str(err)
    assert [r.index for r in err.partial_result] == [0, 1, 2]  # every finished row, the failed one too
    assert err.partial_result[2].error is err.error
    assert len(ernie_simulator.chat_requests) == 3  # nothing after the failing row was sent


def test_bad_arguments_fail_before_anything_is_sent(client, ernie_simulator):
    with pytest.raises(TypeError, match="template needs rows"):
        client.map("Hi {name}")
    with pytest.raises(ValueError, match="on_error"):
        client.map(["a"], on_error="ignore")
    with pytest.raises(BadRequestError):
        client.map(["a"], temperature=5, progress=False)
    assert ernie_simulator.chat_requests == []


def test_rpm_holds_for_the_batch(ernie_simulator):
    async def main() -> int:
        async with AsyncErnie("qianfan", api_key=KEY, base_url=ernie_simulator.base_url("qianfan")) as c:
            task = asyncio.create_task(c.map([f"m{i}" for i in range(5)], rpm=3, progress=False))
            await asyncio.sleep(0.8)
            seen = len(ernie_simulator.chat_requests)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return seen

    assert asyncio.run(main()) == 3


# -- the cache --------------------------------------------------------------------------------------

_CHILD = """
import sys
from ernie_widget.client import Ernie
client = Ernie("qianfan", api_key=sys.argv[1], base_url=sys.argv[2])
client.map([f"row {i}" for i in range(int(sys.argv[4]))], cache=sys.argv[3], concurrency=4, progress=False)
print("finished", flush=True)
"""


def _cached_rows(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM ernie_rows").fetchone()[0])
    except sqlite3.OperationalError:  # the child has not created the table yet
        return 0


def test_a_batch_killed_mid_run_resumes_with_only_the_missing_rows(ernie_simulator, tmp_path):
    ernie_simulator.latency = 0.1
    cache, n = tmp_path / "rows.sqlite", 80
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, KEY, ernie_simulator.base_url("qianfan"), str(cache), str(n)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy(),
    )
    try:
        assert ernie_simulator.wait_for(lambda: _cached_rows(cache) >= 8, timeout=20), child.stderr
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(5)
    assert child.returncode == -signal.SIGKILL
    kept = _cached_rows(cache)
    assert 8 <= kept < n

    ernie_simulator.latency = 0.0
    ernie_simulator.clear()
    prompts = [f"row {i}" for i in range(n)]
    with make_client(ernie_simulator) as c:
        result = c.map(prompts, cache=cache, concurrency=8, progress=False)

    assert result.texts == [echo_answer(p) for p in prompts]  # nothing lost
    assert len(ernie_simulator.chat_requests) == n - kept  # only what was missing was sent
    assert sum(r.cached for r in result) == kept
    assert set(sent_prompts(ernie_simulator)) == {r.prompt for r in result if not r.cached}


def test_the_cache_keeps_only_successful_rows_and_keys_on_params(ernie_simulator, tmp_path):
    cache = tmp_path / "c.sqlite"
    ernie_simulator.push(Fault.status(400))
    with make_client(ernie_simulator) as c:
        first = c.map(["a", "b", "c"], cache=cache, concurrency=1, progress=False)
        assert set(first.errors) == {0}
        ernie_simulator.clear()
        again = c.map(["a", "b", "c"], cache=cache, progress=False)
        assert sent_prompts(ernie_simulator) == ["a"]  # only the failed row
        assert again.errors == {} and [r.cached for r in again] == [False, True, True]
        assert again.usage_total.total_tokens == first.usage_total.total_tokens + again[0].usage.total_tokens
        ernie_simulator.clear()
        c.map(["a", "b", "c"], cache=cache, temperature=0.5, progress=False)
        assert len(ernie_simulator.chat_requests) == 3  # other params, other answers


# -- interrupt and progress -------------------------------------------------------------------------


def test_keyboard_interrupt_cancels_in_flight_rows_and_keeps_the_finished_ones(client, ernie_simulator):
    client.chat("warm up")  # start the private loop and the pool before counting threads
    ernie_simulator.clear()
    ernie_simulator.latency = 0.4
    threads_before = threading.active_count()

    def interrupt_after_some_rows() -> None:
        def mid_batch() -> bool:  # a first wave done, a second one just sent and far from its answer
            reqs = ernie_simulator.chat_requests
            fresh = [r for r in reqs if r.finished is None and time.monotonic() - r.started < 0.1]
            return sum(r.finished is not None for r in reqs) >= 4 and len(fresh) >= 2

        ernie_simulator.wait_for(mid_batch)
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C / the kernel's interrupt button sends

    sender = threading.Thread(target=interrupt_after_some_rows)
    sender.start()
    prompts = [f"k{i}" for i in range(60)]
    with pytest.raises(BatchInterrupted) as info:
        client.map(prompts, concurrency=4, progress=False)
    sender.join()

    assert isinstance(info.value, KeyboardInterrupt)
    partial = info.value.partial_result
    assert 4 <= len(partial) < len(prompts)
    assert all(r.text == echo_answer(prompts[r.index]) for r in partial)
    # every row that was in flight was cancelled and its connection closed, nothing is left running
    assert ernie_simulator.wait_for(lambda: ernie_simulator.in_flight == 0, timeout=2)
    assert any(r.disconnected for r in ernie_simulator.chat_requests)
    assert len(ernie_simulator.chat_requests) < len(prompts)
    assert threading.active_count() == threads_before


def test_progress_bar_reports_rows_and_tokens_at_most_ten_times_a_second(client, ernie_simulator, capsys):
    ernie_simulator.latency = 0.05
    start = time.monotonic()
    client.map([f"p{i}" for i in range(40)], concurrency=2)
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    refreshes = err.count("\r")
    assert "40/40" in err and "tokens=" in err and "row/s" in err
    assert 3 <= refreshes <= 10 * elapsed + 3  # + the first and the closing draw


def test_without_tqdm_there_is_no_bar_but_a_hint(client, ernie_simulator, capsys, monkeypatch):
    from ernie_widget.batch import progress as batch_progress

    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setattr(batch_progress, "_hinted", False)
    result = client.map(["a", "b"])
    client.map(["c"])
    assert result.errors == {}
    err = capsys.readouterr().err
    assert err.count("ernie-widget[batch]") == 1 and "row/s" not in err
