"""Run a function on the kernel's main thread, from any thread, and get its result back.

Reading the user's namespace (an @-mention, the variable list, an agent's tool) races the user's own cells when
done from another thread, and widget comm handlers run on the main thread or, with JupyterLab ≥ 4.4 and ipykernel 7,
on a subshell thread while a cell runs (docs/notebook-facts.md §4). So such work goes through `MainThreadRunner`:

- on the main thread itself it simply runs;
- when the main thread is blocked waiting for our own work (a sync stream, ``%%ernie``, ``AskHandle.wait()``), the
  job is handed to that wait, which runs it between items (client/handoff.py) — scheduling it on the kernel's loop
  would deadlock, since the loop cannot turn until the wait ends;
- when no cell runs, it is scheduled on the kernel's event loop (the main thread's) and the caller waits;
- while a user's cell runs, the caller gets `KernelBusy` at once instead of waiting.

A time limit inside the job (see ernie_widget/context) can only cut Python-level code short; the ``timeout`` here
bounds how long the *caller* waits for a result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .client.handoff import MainThreadJob, offer_to_waiting_main_thread

__all__ = ["KernelBusy", "MainThreadRunner", "main_thread_runner"]

T = TypeVar("T")

#: how long a job handed to a waiting main thread may stay unclaimed before it is rescheduled (the wait may have
#: ended just after the hand-over)
HANDOVER_GRACE = 0.3


class KernelBusy(RuntimeError):
    """A user's cell is running on the main thread: the namespace cannot be read now."""

    def __init__(self) -> None:
        super().__init__("内核忙 / the kernel is busy running a cell")


class MainThreadRunner:
    """Runs functions on the main thread of one IPython kernel (see the module docstring)."""

    def __init__(self, shell: Any = None, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._main = threading.main_thread()
        self._loop = loop
        # a runner made inside a cell is made while that cell runs; post_run_cell says when it ends
        self._cell_running = shell is not None and threading.current_thread() is self._main
        if shell is not None:
            shell.events.register("pre_run_cell", self._pre_run_cell)
            shell.events.register("post_run_cell", self._post_run_cell)

    def _pre_run_cell(self, *_: Any) -> None:
        self._cell_running = True

    def _post_run_cell(self, *_: Any) -> None:
        self._cell_running = False

    @property
    def busy(self) -> bool:
        """A cell runs on the main thread (possibly waiting for our own work, which still serves jobs)."""
        return self._cell_running

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """``fn()`` on the main thread; its exception is raised here. `KernelBusy` when a cell runs that cannot
        serve the job, or when it does not finish within ``timeout`` seconds."""
        if threading.current_thread() is self._main:
            return fn()
        job = MainThreadJob(fn)
        if offer_to_waiting_main_thread(job):
            try:
                return job.future.result(HANDOVER_GRACE)
            except concurrent.futures.TimeoutError:
                if not job.claim():  # it is running: wait for it
                    return self._result(job, timeout)
                job = MainThreadJob(fn)  # the wait ended before it took the job: try the loop
        if self._cell_running or self._loop is None or self._loop.is_closed():
            raise KernelBusy()
        self._loop.call_soon_threadsafe(job.run)
        return self._result(job, timeout)

    @staticmethod
    def _result(job: MainThreadJob, timeout: float) -> Any:
        try:
            return job.future.result(timeout)
        except concurrent.futures.TimeoutError:
            job.claim()  # if it has not started, it never will
            raise KernelBusy() from None


_RUNNERS: dict[int, MainThreadRunner] = {}
_LOCK = threading.Lock()


def main_thread_runner(shell: Any = None) -> MainThreadRunner:
    """The runner of ``shell`` (the current IPython shell by default), made on first use.

    Make it from the main thread (a cell, the widget's constructor): that is where the kernel's loop is found.
    """
    if shell is None:
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            shell = None
    key = id(shell)
    with _LOCK:
        runner = _RUNNERS.get(key)
        if runner is None:
            loop = None
            if threading.current_thread() is threading.main_thread():
                try:
                    loop = asyncio.get_running_loop()  # a cell runs inside the kernel's loop (ipykernel ≥ 6)
                except RuntimeError:
                    loop = _kernel_loop(shell)
            runner = _RUNNERS[key] = MainThreadRunner(shell, loop)
        return runner


def _kernel_loop(shell: Any) -> asyncio.AbstractEventLoop | None:
    """The kernel's asyncio loop when no cell is running (the widget built outside a cell, e.g. in a test)."""
    kernel = getattr(shell, "kernel", None)
    io_loop = getattr(kernel, "io_loop", None)
    loop = getattr(io_loop, "asyncio_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None
