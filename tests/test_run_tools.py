"""`run_tools`: the ask → run → answer loop against the simulator, sync, async and streamed.

The simulator plays the model (scripted tool calls, then a final answer) and checks every tool history it is
sent; the tools are real functions, run where the loop promises to run them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from ernie_widget.client import AsyncErnie, BadRequestError, Ernie, Tool, ToolCall, tool
from ernie_widget.client.tool_executor import can_interrupt_sync_tools
from ernie_widget.testing import Answer, ErnieSimulator
from tests.client_support import client_args


@pytest.fixture(scope="module")
def sim() -> Any:
    with ErnieSimulator() as s:
        yield s


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def call(name: str, cid: str, **arguments: Any) -> dict[str, Any]:
    return {"id": cid, "name": name, "arguments": arguments}


def tool_messages(sim: ErnieSimulator) -> list[dict[str, Any]]:
    return [m for m in sim.chat_requests[-1].json["messages"] if m["role"] == "tool"]


def test_the_loop_runs_calls_and_returns_the_final_answer(sim: ErnieSimulator) -> None:
    seen_threads: list[int] = []

    def weather(city: str) -> dict[str, Any]:
        """Weather for a city."""
        seen_threads.append(threading.get_ident())
        return {"city": city, "temp": 21}

    sim.push(Answer(tool_calls=[call("add", "c1", a=2, b=3), call("weather", "c2", city="北京")]),
             Answer(tool_calls=[call("add", "c3", a=5, b=21)]),
             Answer(text="2+3=5，北京 21 度。"))
    start = len(sim.chat_requests)
    with Ernie(**client_args(sim, "qianfan")) as client:
        run = client.run_tools("算一下并查天气", [add, weather], system="你是助手")
    assert run.text == "2+3=5，北京 21 度。" and run.stop_reason == "answer" and run.rounds == 2
    assert [(r.call.name, r.status, r.content) for r in run.results] == [
        ("add", "ok", "5"), ("weather", "ok", '{"city": "北京", "temp": 21}'), ("add", "ok", "26")]
    assert seen_threads == [threading.get_ident()]  # a sync tool runs in the calling thread
    assert len(sim.chat_requests) - start == 3
    sent = sim.chat_requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "tool", "assistant", "tool"]
    assert [m["tool_call_id"] for m in tool_messages(sim)] == ["c1", "c2", "c3"]
    # the history is ready to continue the conversation
    assert [m["role"] for m in run.messages][-2:] == ["tool", "assistant"]


def test_streamed_events_show_every_step(sim: ErnieSimulator) -> None:
    sim.push(Answer(text="我算一下。", tool_calls=[call("add", "c1", a=1, b=1)]), Answer(text="等于 2。"))
    with Ernie(**client_args(sim, "openai")) as client:
        events = client.stream_tools("1+1?", [add])
        kinds = [ev.type for ev in events]
    assert events.run is not None and events.run.text == "等于 2。"
    first_finish = kinds.index("finish")
    assert kinds.index("tool_call_delta") < kinds.index("tool_call") < first_finish < kinds.index("tool_result")
    assert kinds[-1] == "finish" and kinds.count("text") >= 2


def test_async_loop_awaits_async_tools_and_approvers(sim: ErnieSimulator) -> None:
    async def lookup(key: str) -> str:
        """Look a key up."""
        await asyncio.sleep(0.01)
        return f"value of {key}"

    asked: list[str] = []

    async def approve(c: ToolCall) -> bool:
        asked.append(c.name)
        return True

    sim.push(Answer(tool_calls=[call("lookup", "k1", key="x")]), Answer(text="done"))

    async def main() -> Any:
        async with AsyncErnie(**client_args(sim, "aistudio")) as client:
            return await client.run_tools("look up x", [lookup], approve=approve)

    run = asyncio.run(main())
    assert run.text == "done" and asked == ["lookup"]
    assert run.results[0].content == "value of x" and tool_messages(sim)[0]["content"] == "value of x"


def test_a_raising_tool_is_reported_to_the_model(sim: ErnieSimulator) -> None:
    def broken(x: int) -> int:
        """Always fails."""
        raise ValueError("disk on fire")

    sim.push(Answer(tool_calls=[call("broken", "b1", x=1), call("nope", "b2")]), Answer(text="抱歉，工具出错了。"))
    with Ernie(**client_args(sim, "qianfan")) as client:
        run = client.run_tools("try", [broken])
    assert run.text == "抱歉，工具出错了。"
    assert run.results[0].status == "error"
    assert run.results[0].content == "Error: the tool raised ValueError: disk on fire"
    assert run.results[1].status == "error" and "'nope' does not exist" in run.results[1].content
    assert "Available tools: broken" in tool_messages(sim)[1]["content"]


def test_invalid_arguments_go_back_to_the_model(sim: ErnieSimulator) -> None:
    sim.push(Answer(tool_calls=[{"id": "i1", "name": "add", "arguments": '{"a": "two", "b": 1}'},
                                {"id": "i2", "name": "add", "arguments": "{broken"}]), Answer(text="ok"))
    with Ernie(**client_args(sim, "qianfan")) as client:
        run = client.run_tools("add", [add])
    assert [r.status for r in run.results] == ["invalid", "invalid"]
    assert "a: Input should be a valid integer" in run.results[0].content
    assert "not valid JSON" in run.results[1].content


def test_async_tool_timeout(sim: ErnieSimulator) -> None:
    async def slow() -> str:
        """Takes forever."""
        await asyncio.sleep(30)
        return "never"

    sim.push(Answer(tool_calls=[call("slow", "s1")]), Answer(text="gave up"))

    async def main() -> Any:
        async with AsyncErnie(**client_args(sim, "qianfan")) as client:
            return await client.run_tools("wait", [slow], tool_timeout=0.2)

    t0 = time.monotonic()
    run = asyncio.run(main())
    assert time.monotonic() - t0 < 5
    assert run.results[0].status == "error" and "timed out after 0.2 s" in run.results[0].content


def test_sync_tool_timeout_on_the_main_thread_only(sim: ErnieSimulator) -> None:
    assert can_interrupt_sync_tools()  # pytest runs tests on the main thread

    def busy(seconds: float) -> str:
        """Sleeps."""
        time.sleep(seconds)
        return "finished"

    sim.push(Answer(tool_calls=[call("busy", "t1", seconds=20)]), Answer(text="ok"))
    t0 = time.monotonic()
    with Ernie(**client_args(sim, "qianfan")) as client:
        run = client.run_tools("go", [busy], tool_timeout=0.3)
        assert time.monotonic() - t0 < 5
        assert run.results[0].status == "error" and "timed out" in run.results[0].content

        # off the main thread no signal can interrupt a sync tool: it runs to its end (documented)
        sim.push(Answer(tool_calls=[call("busy", "t2", seconds=0.4)]), Answer(text="ok"))
        box: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: box.update(run=client.run_tools("go", [busy], tool_timeout=0.1)))
        worker.start()
        worker.join(10)
    assert box["run"].results[0].status == "ok" and box["run"].results[0].content == "finished"


def test_max_rounds_stops_a_model_that_keeps_calling(sim: ErnieSimulator) -> None:
    sim.push(*[Answer(tool_calls=[call("add", f"r{n}", a=n, b=n)]) for n in range(3)])
    start = len(sim.chat_requests)
    with Ernie(**client_args(sim, "qianfan")) as client:
        run = client.run_tools("loop", [add], max_rounds=2)
    assert run.stop_reason == "max_rounds" and run.rounds == 2 and len(run.results) == 2
    assert len(sim.chat_requests) - start == 3
    assert [c.id for c in run.reply.tool_calls] == ["r2"]  # the unrun calls are there to inspect
    with pytest.raises(BadRequestError, match="max_rounds"):
        Ernie(**client_args(sim, "qianfan")).run_tools("x", [add], max_rounds=0)


def test_approve_runs_skips_or_edits(sim: ErnieSimulator) -> None:
    decisions: list[Any] = [False, {"a": 10, "b": 20}, True]
    ran: list[tuple[int, int]] = []

    def add_logged(a: int, b: int) -> int:
        """Add."""
        ran.append((a, b))
        return a + b

    sim.push(Answer(tool_calls=[call("add_logged", f"a{n}", a=n, b=n) for n in range(3)]), Answer(text="ok"))
    with Ernie(**client_args(sim, "qianfan")) as client:
        run = client.run_tools("add", [add_logged], approve=lambda c: decisions.pop(0))
        assert ran == [(10, 20), (2, 2)]
        assert [r.status for r in run.results] == ["denied", "ok", "ok"]
        assert "declined" in tool_messages(sim)[0]["content"]
        assert run.results[1].content == "30"

        sim.push(Answer(tool_calls=[call("add_logged", "x", a=1, b=1)]))
        with pytest.raises(BadRequestError, match="approve"):
            client.run_tools("add", [add_logged], approve=lambda c: "maybe")


def test_results_are_bounded(sim: ErnieSimulator) -> None:
    def dump() -> str:
        """A lot of text."""
        return "数据" * 100_000

    sim.push(Answer(tool_calls=[call("dump", "d1")]), Answer(text="ok"))
    with Ernie(**client_args(sim, "qianfan")) as client:
        run = client.run_tools("dump", [dump], max_result_chars=1000)
    result = run.results[0]
    assert result.truncated and len(result.content) < 1100 and "199000 more characters truncated" in result.content
    assert tool_messages(sim)[0]["content"] == result.content


def test_a_custom_executor_decides_where_calls_run(sim: ErnieSimulator) -> None:
    class RecordingExecutor:
        """Runs each call in a worker thread of its own, as a sandbox might."""

        def __init__(self) -> None:
            self.threads: list[str] = []

        def run(self, t: Tool, arguments: dict[str, Any], timeout: float | None) -> Any:
            box: dict[str, Any] = {}

            def work() -> None:
                self.threads.append(threading.current_thread().name)
                assert t.fn is not None
                box["v"] = t.fn(**arguments)

            th = threading.Thread(target=work, name="sandbox")
            th.start()
            th.join(timeout)
            return box["v"]

    executor = RecordingExecutor()
    sim.push(Answer(tool_calls=[call("add", "e1", a=4, b=4)]), Answer(text="8"))
    with Ernie(**client_args(sim, "qianfan")) as client:
        run = client.run_tools("4+4", [tool(add)], executor=executor)
    assert executor.threads == ["sandbox"] and run.results[0].content == "8"
