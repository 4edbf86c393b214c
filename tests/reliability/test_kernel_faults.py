"""Kernel-level faults in a real ipykernel (jupyter_client): interrupts, restarts, widgets closed mid-stream.

The magic drains its stream on the kernel's main thread, so a kernel interrupt (SIGINT) must cancel it;
widget streams run on the private loop and must not notice. Every test ends by checking the kernel is
still usable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ernie_widget.testing import Answer, ErnieSimulator, Fault, RecordedRequest
from tests.test_kernel import Kernel, displays, kernel_with

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]

SLOW = Answer(text="慢慢地" * 20, chunk_size=1, delay=0.1)  # 60 chunks, ~6 s: outlives the magic cell


@pytest.fixture(scope="module")
def sim() -> Iterator[ErnieSimulator]:
    with ErnieSimulator() as s:
        yield s


@pytest.fixture(scope="module")
def kernel(sim: ErnieSimulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    yield from kernel_with(sim, tmp_path_factory, SETUP)


SETUP = "%load_ext ernie_widget\nfrom ernie_widget import ErnieChat\nimport json"


def _setup(k: Kernel) -> None:
    """Again after a kernel restart."""
    reply, _ = k.run(SETUP)
    assert reply["content"]["status"] == "ok"


def _printed(msgs: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def _value(k: Kernel, code: str, timeout: float = 15.0) -> Any:
    """Run *code*, whose last line prints one JSON value; return it."""
    reply, msgs = k.run(code, timeout)
    assert reply["content"]["status"] == "ok", reply["content"]
    return json.loads(_printed(msgs).strip().splitlines()[-1])


def _new_request(sim: ErnieSimulator, before: int, chunks: int = 2) -> RecordedRequest:
    """The chat request that arrived after *before* others, once it has streamed *chunks* chunks."""
    assert sim.wait_for(lambda: len(sim.chat_requests) > before and sim.chat_requests[before].chunks_sent >= chunks,
                        timeout=10)
    return sim.chat_requests[before]


def _assert_usable(k: Kernel, sim: ErnieSimulator) -> None:
    sim.push(Answer(text="还在"))
    reply, msgs = k.run("%%ernie\nping")
    assert reply["content"]["status"] == "ok"
    assert displays(msgs)[-1]["content"]["data"]["text/plain"] == "还在"


def test_interrupt_cancels_the_magic_but_not_a_widget_stream(kernel: Kernel, sim: ErnieSimulator) -> None:
    n = len(sim.chat_requests)
    sim.push(SLOW)
    reply, _ = kernel.run("chat = ErnieChat()\nhandle = chat.ask('慢慢说')")
    assert reply["content"]["status"] == "ok"
    widget_req = _new_request(sim, n)

    # a `%%ernie` in another cell stalls after "部分"; interrupt it once that is shown
    n = len(sim.chat_requests)
    sim.push(Fault.stall(after_chunks=1, seconds=30, answer=Answer(text="部分回答", chunk_size=2)))
    msg_id = kernel.send("%%ernie\n讲个很长的故事")
    kernel.collect(msg_id, timeout=10, until=lambda msgs: any(
        m["content"]["data"].get("text/plain") == "部分" for m in displays(msgs)))
    magic_req = sim.chat_requests[n]
    kernel.km.interrupt_kernel()
    assert sim.wait_for(lambda: magic_req.disconnected, timeout=2), "the interrupt did not close the magic's request"
    interrupted, _ = kernel.collect(msg_id, timeout=10)
    assert interrupted is not None and interrupted["content"]["ename"] == "KeyboardInterrupt"

    # the widget's answer went on streaming, untouched, and completes
    assert not widget_req.disconnected and widget_req.finished is None
    answer = _value(kernel, "a = handle.wait(15)\nprint(json.dumps([a['status'], a['content']]))")
    assert answer == ["ok", SLOW.text]
    # the client can have the last byte before the simulator's handler has unwound: wait for its record
    assert sim.wait_for(lambda: widget_req.finished is not None, timeout=2)
    assert not widget_req.disconnected

    # and chat.stop() does end a widget answer: the partial text is kept, the request closed
    n = len(sim.chat_requests)
    sim.push(Fault.endless(interval=0.02))
    kernel.run("handle = chat.ask('不停地说')")
    req = _new_request(sim, n, chunks=5)
    answer = _value(kernel, "chat.stop()\na = handle.wait(5)\nprint(json.dumps([a['status'], a['content']]))")
    assert answer[0] == "stopped" and answer[1]
    assert sim.wait_for(lambda: req.disconnected, timeout=2)
    kernel.run("chat.close()")
    _assert_usable(kernel, sim)


def test_widget_closed_mid_stream_disconnects_and_leaves_nothing_running(kernel: Kernel, sim: ErnieSimulator) -> None:
    _assert_usable(kernel, sim)  # the loop thread exists before the baseline
    before = kernel.probe()
    assert "ernie-stream" in before["threads"]

    n = len(sim.chat_requests)
    sim.push(Fault.endless(interval=0.02))
    kernel.run("from IPython.display import display\nchat = ErnieChat()\ndisplay(chat)\nhandle = chat.ask('说下去')")
    req = _new_request(sim, n, chunks=5)
    answer = _value(kernel, "chat.close()\na = handle.wait(5)\nprint(json.dumps([a['status'], len(a['content'])]))")
    assert answer[0] == "stopped" and answer[1] > 0
    assert sim.wait_for(lambda: req.disconnected, timeout=2), "closing the widget did not close its request"

    tasks = _value(kernel, "import asyncio\nfrom ernie_widget.client.background import background_loop\n"
                           "async def _n(): return len(asyncio.all_tasks()) - 1\n"
                           "print(asyncio.run_coroutine_threadsafe(_n(), background_loop()).result(5))")
    assert tasks == 0
    after = kernel.probe()
    assert after["threads"] == before["threads"]  # the kernel's own threads plus the one loop thread
    assert after["fds"] <= before["fds"] + 1  # ±1: idle keep-alive connections in the pool
    _assert_usable(kernel, sim)


def test_kernel_restart_while_a_widget_streams(kernel: Kernel, sim: ErnieSimulator) -> None:
    n = len(sim.chat_requests)
    sim.push(Fault.endless(interval=0.02))
    kernel.run("from IPython.display import display\nchat = ErnieChat()\ndisplay(chat)\nhandle = chat.ask('一直说')")
    req = _new_request(sim, n, chunks=5)

    kernel.km.restart_kernel(now=True)
    kernel.kc.wait_for_ready(timeout=30)
    assert sim.wait_for(lambda: req.disconnected, timeout=5), "the old kernel's stream was not closed"

    _setup(kernel)
    sim.push(Answer(text="新的开始"))
    answer = _value(kernel, "chat = ErnieChat()\na = chat.ask('你好').wait(10)\n"
                            "print(json.dumps([a['status'], a['content']]))")
    assert answer == ["ok", "新的开始"]
    kernel.run("chat.close()")
    _assert_usable(kernel, sim)
