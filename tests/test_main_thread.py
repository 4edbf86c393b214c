"""`MainThreadRunner` in a real ipykernel: a job from another thread runs on the main thread when the kernel is idle,
inside our own blocking wait while a stream runs, and is refused (KernelBusy) while a user's cell runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ernie_widget.testing import Answer, ErnieSimulator
from tests.test_kernel import Kernel, kernel_with

pytestmark = pytest.mark.kernel

SETUP = """
import threading, time
from ernie_widget.main_thread import KernelBusy, main_thread_runner
runner = main_thread_runner()
seen = []

def from_other_thread(delay, timeout=5.0):
    def work():
        time.sleep(delay)
        t0 = time.monotonic()
        try:
            seen.append((runner.call(lambda: threading.current_thread().name, timeout=timeout),
                         round(time.monotonic() - t0, 2)))
        except KernelBusy as exc:
            seen.append(("busy", str(exc)))
    threading.Thread(target=work, name="subshell-like").start()
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[ErnieSimulator]:
    with ErnieSimulator() as s:
        yield s


@pytest.fixture(scope="module")
def kernel(sim: ErnieSimulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    yield from kernel_with(sim, tmp_path_factory, SETUP)


def seen(kernel: Kernel) -> list[Any]:
    _, msgs = kernel.run("import json; print(json.dumps(seen)); seen.clear()")
    out = "".join(m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream")
    return json.loads(out)  # type: ignore[no-any-return]


def test_an_idle_kernel_runs_the_job_on_its_main_thread(kernel: Kernel) -> None:
    kernel.run("from_other_thread(0.3)")
    kernel.run("time.sleep(0)")  # a cell that ends at once
    import time

    time.sleep(1.0)  # the job is served by the kernel's loop between cells
    result = seen(kernel)
    assert result and result[0][0] == "MainThread" and result[0][1] < 1.0


def test_a_running_cell_makes_it_busy_at_once(kernel: Kernel) -> None:
    kernel.run("from_other_thread(0.2)\ntime.sleep(1.2)")
    result = seen(kernel)
    assert result and result[0][0] == "busy" and "busy" in result[0][1]


def test_a_cell_waiting_on_a_stream_serves_the_job(kernel: Kernel, sim: ErnieSimulator) -> None:
    sim.push(Answer(text="x" * 40, chunk_size=1, delay=0.05))  # a 2 s stream, drained on the main thread
    code = ("from ernie_widget import Ernie\n"
            "from_other_thread(0.3)\n"
            "t0 = time.monotonic()\n"
            "text = ''.join(ev.text for ev in Ernie().stream('hi') if ev.type == 'text')\n"
            "print(len(text), round(time.monotonic() - t0, 1))")
    reply, _ = kernel.run(code, timeout=20)
    assert reply["content"]["status"] == "ok"
    result = seen(kernel)
    # the job ran on the main thread, long before the stream ended
    assert result and result[0][0] == "MainThread" and result[0][1] < 1.0, result


def test_the_job_is_not_run_twice_or_lost_when_the_wait_ends(kernel: Kernel) -> None:
    # many jobs against a kernel switching between idle and short cells: each runs once, or is refused once
    kernel.run("for d in (0.0, 0.05, 0.1, 0.15, 0.2): from_other_thread(d, timeout=3)")
    for _ in range(3):
        kernel.run("time.sleep(0.05)")
    import time

    time.sleep(1.5)
    result = seen(kernel)
    assert len(result) == 5 and all(r[0] in ("MainThread", "busy") for r in result), result

