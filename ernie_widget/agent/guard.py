"""Interrupting tool code: Stop and time limits for code that runs on the kernel's main thread.

`run_guarded(fn, timeout)` runs ``fn()`` on the main thread with SIGINT and SIGALRM handlers of its own, and
reports how it ended (`Guarded`: ``ok``, ``error``, ``interrupted`` or ``timeout``) instead of raising.
`interrupt()`, callable from any thread (the chat's Stop handler may run on a kernel subshell thread), sends SIGINT
to the main thread only while such a run is active.

Facts this relies on, checked against ipykernel 7.4.0 / Python 3.11 (measured in a real kernel driven by
jupyter_client, a job scheduled through `MainThreadRunner` while the kernel is idle):

- An idle ipykernel ignores SIGINT: ``init_signal`` sets ``SIG_IGN``; ``signal.default_int_handler`` is installed
  only around a shell request (``pre_handler_hook``). Measured: a job on the kernel's loop sees ``SIG_IGN``; an
  interrupt sent to the idle kernel does nothing. So the run installs its own handler and restores the previous one.
- ``_thread.interrupt_main()`` does not cut a blocking call short: ``time.sleep(5)`` and ``Event().wait(5)`` both
  ran their full 5.0 s and raised ``KeyboardInterrupt`` only then. ``signal.pthread_kill(main, SIGINT)`` with a
  handler installed ended both after 0.49–0.50 s (sent 0.5 s in). A pure-Python loop stops within ~0.1 s either
  way. ``sum(range(2 * 10**8))`` (C code that never checks for signals) runs to its end (3.8 s) whatever is sent.
- A ``KeyboardInterrupt`` escaping an event-loop callback stops the kernel's loop: a callback raising it made the
  kernel *process exit*. `MainThreadJob` hands every exception to the waiting caller, and the handlers here raise
  only inside the guarded region, so nothing escapes.
- A signal that arrives while ``fn`` is finishing is the dangerous one. Python 3.11 runs a signal's handler at the
  next function entry or backward jump, not when a C call returns: a SIGINT sent during ``sum(range(5 * 10**7))``
  was raised at the ``signal.getsignal()`` call in the ``finally`` after it. And ``signal.signal()`` runs pending
  handlers before it swaps the handler. With a plain ``default_int_handler`` a late ``KeyboardInterrupt`` was thus
  raised by the *restore* call itself, outside any ``except``: measured, the job's ``finally`` was cut short, the
  idle kernel was left with ``default_int_handler`` installed and the exception reached the caller; with Stop
  pressed every ~2 ms during 150 short runs, 1–2 runs leaked ``KeyboardInterrupt`` into their caller. Hence: the
  handlers raise only while the run is *armed* (a flag cleared inside the protected region, before anything else);
  ``interrupt()`` sends only while the run is *active*, under a lock the run takes before it restores anything, so
  every signal it sent is already pending; a system call (``sigpending``) then has the OS deliver it and the
  restore call runs it through our disarmed handler, which ignores it. Measured the same way: no leak in 5 × 150
  runs, and a late Stop never reaches the user's next cell (tests/test_agent_run_python.py).

Limits: a signal reaches Python code only between bytecodes, so C code that does not check for signals (a long
``sum``, a NumPy kernel, a C extension's loop) is cut short only when it returns to Python; blocking calls that
Python retries after ``EINTR`` (``time.sleep``, lock and event waits, ``select``, socket reads) are cut short. A
run nested in another (a tool that calls `run_python`) installs nothing: the outer run's Stop and time limit apply
and reach it as ``KeyboardInterrupt`` / `Deadline`, which it lets through to the outer run.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Deadline", "Guarded", "Status", "interrupt", "on_main_thread", "run_guarded", "tool_running"]

Status = Literal["ok", "error", "interrupted", "timeout"]


class Deadline(BaseException):  # like KeyboardInterrupt: an ordinary `except Exception` lets it pass
    """The run's time limit passed (raised by the SIGALRM handler inside the guarded code)."""


@dataclass(frozen=True)
class Guarded:
    """How a guarded run ended: its value (``ok``) or the exception it ended with, and how long it took."""

    status: Status
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0
    #: Stop was pressed during the run (even if the code caught the ``KeyboardInterrupt`` and went on)
    stop_requested: bool = False


class _State:
    """The one guarded run of this process (they all run on the main thread, one at a time)."""

    __slots__ = ("active", "armed", "stop_requested")

    def __init__(self) -> None:
        self.active = False  # interrupt() may send SIGINT (changed under _lock)
        self.armed = False  # the handlers raise (read by them without a lock: they run on the main thread)
        self.stop_requested = False


_state = _State()
_lock = threading.Lock()


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def tool_running() -> bool:
    """Whether a guarded run is active now."""
    return _state.active


def interrupt() -> bool:
    """Stop the tool code running on the main thread (from any thread). True when a run was active and got the
    signal; False when none was (nothing is sent, so a late Stop cannot interrupt the user's next cell)."""
    with _lock:
        if not _state.active:
            return False
        _state.stop_requested = True
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        return True


def _on_sigint(signum: int, frame: Any) -> None:
    if _state.armed:
        raise KeyboardInterrupt


def _on_alarm(signum: int, frame: Any) -> None:
    if _state.armed:
        raise Deadline


def run_guarded(fn: Callable[[], Any], timeout: float | None) -> Guarded:
    """``fn()`` with Stop (`interrupt`, or a kernel interrupt) and a time limit; never raises what ``fn`` raised.

    Must be called on the main thread (signal handlers can be set only there): reach it through
    `ernie_widget.main_thread.MainThreadRunner`.
    """
    if not on_main_thread():
        raise RuntimeError("工具代码只能在主线程上运行 / guarded tool code runs only on the main thread "
                           "(use main_thread_runner().call)")
    if _state.active:
        return _nested(fn)
    started = time.monotonic()
    try:
        previous_int = signal.signal(signal.SIGINT, _on_sigint)
    except KeyboardInterrupt as exc:  # pending for the cell whose wait runs us (it runs pending handlers first)
        return Guarded("interrupted", None, exc, time.monotonic() - started)
    use_alarm = bool(timeout and timeout > 0 and hasattr(signal, "setitimer"))
    previous_alarm: Any = None
    old_timer = (0.0, 0.0)
    if use_alarm:
        previous_alarm = signal.signal(signal.SIGALRM, _on_alarm)
    with _lock:
        _state.active = True
        _state.stop_requested = False
    status: Status
    value: Any = None
    error: BaseException | None = None
    try:
        try:
            try:
                _state.armed = True  # the first statement inside: whatever a handler raises is caught below
                if use_alarm:
                    old_timer = signal.setitimer(signal.ITIMER_REAL, timeout or 0.0)
                if _state.stop_requested:  # Stop came between `active` and `armed`: its signal was ignored
                    raise KeyboardInterrupt
                value = fn()
            finally:
                _state.armed = False  # from here on a signal is ignored: nothing can raise outside this try
        except KeyboardInterrupt as exc:
            status, error = "interrupted", exc
        except Deadline as exc:
            status, error = "timeout", exc
        except BaseException as exc:  # SystemExit too: tool code never ends the kernel
            status, error = "error", exc
        else:
            status = "ok"
    finally:
        with _lock:  # every interrupt() that saw the run active has sent its signal by now
            _state.active = False
            stop_requested = _state.stop_requested
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
        _deliver_pending()
        signal.signal(signal.SIGINT, previous_int if previous_int is not None else signal.SIG_DFL)
        if use_alarm:
            signal.signal(signal.SIGALRM, previous_alarm if previous_alarm is not None else signal.SIG_DFL)
            _restore_timer(old_timer, time.monotonic() - started)
    if stop_requested and status == "ok":
        status = "interrupted"
    return Guarded(status, value, error, time.monotonic() - started, stop_requested)


def _nested(fn: Callable[[], Any]) -> Guarded:
    """A run inside a run: the outer one's handlers and time limit stay; its Stop and timeout pass through."""
    started = time.monotonic()
    try:
        value = fn()
    except (KeyboardInterrupt, Deadline):
        raise
    except BaseException as exc:
        return Guarded("error", None, exc, time.monotonic() - started)
    return Guarded("ok", value, None, time.monotonic() - started)


def _deliver_pending() -> None:
    """Have the OS deliver a signal already sent to this thread, while our (disarmed) handlers are installed: it
    is delivered on the return from a system call, and the next ``signal.signal()`` runs its Python handler."""
    sigpending = getattr(signal, "sigpending", None)
    if sigpending is not None:
        sigpending()


def _restore_timer(old: tuple[float, float], elapsed: float) -> None:
    """Put back an interval timer someone else had set (what was left of it, less our run)."""
    delay, interval = old
    if delay > 0:
        signal.setitimer(signal.ITIMER_REAL, max(delay - elapsed, 0.001), interval)
