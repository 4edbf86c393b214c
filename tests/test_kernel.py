"""`%%ernie` in a real ipykernel (jupyter_client), against the simulator: display updates, kernel
interrupt during a stalled stream, and the `set_next_input` payload."""

from __future__ import annotations

import json
import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ernie_widget
from ernie_widget.testing import Answer, ErnieSimulator, Fault

pytestmark = pytest.mark.kernel

ROOT = Path(ernie_widget.__file__).resolve().parents[1]
KEY = "bce-v3/ALTAK-kerneltest1/kernelsecret2"
_DROP = ("QIANFAN_", "AISTUDIO_", "ERNIE_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
         "https_proxy", "all_proxy")


class Kernel:
    """A started kernel plus a blocking client, with a helper that runs one cell and collects its output."""

    def __init__(self, sim: ErnieSimulator, workdir: Path) -> None:
        from jupyter_client.manager import KernelManager

        env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
        env.update(sim.env("qianfan", api_key=KEY), PYTHONPATH=str(ROOT), ERNIE_QUIET="1")
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=str(workdir))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=30)

    def send(self, code: str) -> str:
        return self.kc.execute(code, store_history=True)

    def collect(self, msg_id: str, timeout: float = 15.0,
                until: Any = None) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """IOPub messages of *msg_id* until the kernel is idle (or *until(msgs)* is true), then the reply."""
        msgs: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; got {[m['msg_type'] for m in msgs]}")
            try:
                msg = self.kc.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            msgs.append(msg)
            if until is not None and until(msgs):
                return None, msgs
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        return self.reply(msg_id, timeout=max(1.0, deadline - time.monotonic())), msgs

    def reply(self, msg_id: str, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def run(self, code: str, timeout: float = 15.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        reply, msgs = self.collect(self.send(code), timeout)
        assert reply is not None
        return reply, msgs

    def probe(self) -> dict[str, Any]:
        """Threads and open file descriptors inside the kernel."""
        code = ("import json as _j, os as _o, threading as _t\n"
                "print(_j.dumps({'threads': sorted(t.name for t in _t.enumerate()), "
                "'fds': len(_o.listdir('/proc/self/fd'))}))")
        reply, msgs = self.run(code)
        assert reply["content"]["status"] == "ok"
        out = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
        return json.loads(out)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def sim() -> Iterator[ErnieSimulator]:
    with ErnieSimulator() as s:
        yield s


def kernel_with(sim: ErnieSimulator, tmp_path_factory: pytest.TempPathFactory, setup: str) -> Iterator[Kernel]:
    """A started kernel that ran ``setup`` (which must succeed); closed when the generator ends (for fixtures)."""
    k = Kernel(sim, tmp_path_factory.mktemp("kernel"))
    try:
        reply, _ = k.run(setup)
        assert reply["content"]["status"] == "ok", reply["content"]
        yield k
    finally:
        k.close()


@pytest.fixture(scope="module")
def kernel(sim: ErnieSimulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    yield from kernel_with(sim, tmp_path_factory, "%load_ext ernie_widget")


def displays(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]


def test_cell_magic_streams_into_one_display(kernel: Kernel, sim: ErnieSimulator) -> None:
    sim.push(Answer(text="逐字输出。" * 20, chunk_size=2, delay=0.01))
    reply, msgs = kernel.run("%%ernie\n写一段话")
    assert reply["content"]["status"] == "ok"
    shown = displays(msgs)
    assert shown[0]["msg_type"] == "display_data"
    assert len(shown) >= 3 and all(m["msg_type"] == "update_display_data" for m in shown[1:])
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert all(m["content"]["transient"]["display_id"] == display_id for m in shown)
    final = shown[-1]["content"]
    assert final["data"]["text/plain"] == "逐字输出。" * 20
    assert "text/markdown" not in final["data"] and "text/html" in final["data"]
    assert final["metadata"]["ernie_widget"]["provider"] == "qianfan"
    assert KEY not in json.dumps(msgs, ensure_ascii=False, default=str)


def test_code_format_sets_the_next_cell_through_the_reply_payload(kernel: Kernel, sim: ErnieSimulator) -> None:
    sim.push(Answer(text="好的：\n\n```python\nfor i in range(3):\n    print(i)\n```\n\n这样就行。"))
    reply, _ = kernel.run("%%ernie -f code\n打印 0 到 2")
    payload = reply["content"]["payload"]
    assert payload == [{"source": "set_next_input", "text": "for i in range(3):\n    print(i)", "replace": False}]


def _interrupted_turn(kernel: Kernel, sim: ErnieSimulator) -> tuple[float, dict[str, Any], list[dict[str, Any]], Any]:
    """Start `%%ernie` on a stream that stalls after "部分回答", interrupt it once that text is shown.

    Returns how long after the interrupt the simulator saw the connection closed, the reply, the
    cell's IOPub messages and the recorded request.
    """
    sim.push(Fault.stall(after_chunks=2, seconds=30, answer=Answer(text="部分回答后面没有了", chunk_size=2)))
    msg_id = kernel.send("%%ernie --thread story\n讲个很长的故事")

    def partial_shown(msgs: list[dict[str, Any]]) -> bool:
        return any(m["content"]["data"].get("text/plain") == "部分回答" for m in displays(msgs))

    _, early = kernel.collect(msg_id, timeout=10, until=partial_shown)
    req = sim.chat_requests[-1]
    assert not req.disconnected
    t0 = time.monotonic()
    kernel.km.interrupt_kernel()
    assert sim.wait_for(lambda: req.disconnected, timeout=1.0), "the request was not closed within 1 s"
    stopped = time.monotonic() - t0
    reply, late = kernel.collect(msg_id, timeout=10)
    assert reply is not None
    # the reply also waits for IPython to format the KeyboardInterrupt traceback: allow for a busy machine
    assert time.monotonic() - t0 < 3.0
    return stopped, reply, early + late, req


def test_interrupt_during_a_stalled_stream(kernel: Kernel, sim: ErnieSimulator) -> None:
    kernel.run("%%ernie\nwarm up the connection pool")
    before = kernel.probe()
    assert "ernie-stream" in before["threads"]

    stopped, reply, msgs, _ = _interrupted_turn(kernel, sim)
    assert stopped < 1.0
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    assert displays(msgs)[-1]["content"]["data"]["text/plain"] == "部分回答"  # the partial answer stays

    sim.push(Answer(text="下一个回答"))
    reply, msgs = kernel.run("%%ernie --thread story\n继续")
    assert reply["content"]["status"] == "ok"
    assert displays(msgs)[-1]["content"]["data"]["text/plain"] == "下一个回答"
    # the interrupted exchange is kept (status stopped), with its partial text, in the thread
    roles = [(m["role"], m["content"]) for m in sim.chat_requests[-1].messages]
    assert roles[-3:] == [("user", "讲个很长的故事"), ("assistant", "部分回答"), ("user", "继续")]

    for _ in range(3):  # a leak would grow with every interrupted stream
        stopped, reply, _, _ = _interrupted_turn(kernel, sim)
        assert stopped < 1.0 and reply["content"]["ename"] == "KeyboardInterrupt"
    kernel.run("%%ernie\nafter")
    after = kernel.probe()
    assert after["threads"] == before["threads"]  # nothing left behind but the one loop thread
    assert after["fds"] <= before["fds"] + 1  # ±1: how many idle keep-alive connections the pool holds
