"""The agent's ``run_python`` tool: run code like a cell in the user's namespace and tell the model what happened.

`run_python(code, shell=…, timeout=…, max_chars=…)` runs on the kernel's main thread (callers get there through
`ernie_widget.main_thread.MainThreadRunner`), in ``shell.user_ns``, so the variables it makes are the user's:

- IPython's input transformations apply (``%magic`` and ``!cmd`` lines); the code is parsed with `ast` (a
  SyntaxError becomes an ``error`` result, never an exception); every statement but the last is executed, the last
  one is evaluated when it is an expression and its ``text/plain`` form (IPython's formatter) is the result, unless
  the code ends with ``;``. Top-level ``await`` is not supported.
- stdout, stderr and rich displays are captured with IPython's ``capture_output()`` — not ``shell.run_cell``, which
  is re-entrant and whose output escapes the capture. Rich displays are described in words ("<displayed: text/html
  3 KB>", plus their ``text/plain`` form); PNG and JPEG displays are kept as images (data URLs).
- New matplotlib figures (``plt.get_fignums()`` before and after; only when ``matplotlib.pyplot`` has been
  imported, by the user or by the code — it is never imported here) are rendered to PNG data URLs (`ernie_widget.client.messages.image`). They
  are not closed: they are the user's. Measured with matplotlib-inline: such a figure is shown in the output of the
  user's next cell, then closed (the backend flushes pending figures after every cell).
- An exception becomes a traceback (the code's frames are named ``<agent>``; the last few frames are kept; source
  lines of ``<agent>`` frames come from the latest run, so a function an earlier run defined shows wrong ones).
- Stop (`ernie_widget.agent.interrupt`) and the time limit are those of `run_guarded` (guard.py).
- The output is what the code printed, then one note per display, then the result or the traceback. stdout is
  swapped for the whole process, so what other threads print during the run lands in it too.

Agent runs are not part of the notebook's history: no ``In``/``Out`` entries, no execution count, ``_`` unchanged,
no ``pre_run_cell``/``post_run_cell`` events (so the main-thread runner still sees the kernel as idle, and
extensions hooked on those events — autoreload, the inline backend's figure flush — do not run).

What the model reads (`PythonResult.text`) has key-shaped strings and registered secrets redacted
(`ernie_widget.client.redact`) and is at most ``max_chars`` characters, with a note saying how much was cut (the
start and the end are kept: a traceback or a result comes last).
"""

from __future__ import annotations

import ast
import base64
import contextlib
import io
import linecache
import re
import sys
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..client.messages import image
from ..client.redact import redact
from . import guard as _guard
from .guard import Guarded, Status, on_main_thread, run_guarded

__all__ = ["FILENAME", "MAX_CHARS", "PythonResult", "run_python"]

#: the file name of the agent's code in tracebacks
FILENAME = "<agent>"
MAX_CHARS = 20_000
TIMEOUT = 60.0
#: images (PNG/JPEG displays, then new figures) kept per run
MAX_IMAGES = 4
#: frames of a traceback kept (the last ones)
MAX_FRAMES = 8
#: characters of a rich display's text/plain form quoted under its note
DISPLAY_TEXT_CHARS = 2_000
_IMAGE_MIMES = ("image/png", "image/jpeg")
_OWN_FILES = frozenset({__file__, _guard.__file__})
#: terminal control sequences (colours, clear-line) in captured output: noise for the model
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class PythonResult:
    """What one `run_python` did, as the model reads it."""

    #: stdout, stderr, display notes, then the result or the traceback; redacted, at most ``max_chars`` (+ the note)
    text: str
    #: PNG/JPEG displays and new matplotlib figures, as ``data:image/…;base64,…`` URLs
    images: list[str] = field(default_factory=list)
    status: Status = "ok"
    seconds: float = 0.0
    #: part of the text was cut to fit ``max_chars``
    truncated: bool = False

    def __str__(self) -> str:
        return self.text


def run_python(code: str, *, shell: Any, timeout: float | None = TIMEOUT, max_chars: int = MAX_CHARS,
               max_images: int = MAX_IMAGES) -> PythonResult:
    """Run ``code`` like a cell in ``shell.user_ns``, on the main thread (see the module docstring)."""
    if not on_main_thread():
        raise RuntimeError("run_python 只能在内核主线程上运行 / run_python runs only on the kernel's main thread "
                           "(use main_thread_runner().call)")
    source = _transform(shell, code)
    try:
        body, last = _compile(source)
    except (SyntaxError, ValueError) as exc:  # ValueError: a null byte in the source
        text = "".join(traceback.format_exception_only(type(exc), exc))
        return _result(text, [], "error", 0.0, max_chars)
    linecache.cache[FILENAME] = (len(source), None, source.splitlines(True), FILENAME)
    quiet = source.rstrip().endswith(";")
    figures_before = _fignums()
    out, err = _Capture(max_chars + 4096), _Capture(max_chars + 4096)
    with _capture() as captured, _redirect(out, err):
        guarded = run_guarded(lambda: _execute(shell, body, last, quiet), timeout)
    images, notes = _displays(captured.outputs if captured is not None else [], max_images)
    more_images, more_notes = _new_figures(figures_before, max_images - len(images))
    images += more_images
    text = _compose(out.getvalue(), err.getvalue(), notes + more_notes, guarded, timeout)
    return _result(text, images, guarded.status, guarded.seconds, max_chars)


def _result(text: str, images: list[str], status: Status, seconds: float, max_chars: int) -> PythonResult:
    text = redact(text) if text.strip() else "(no output / 无输出)"
    text, truncated = _bound(text, max_chars)
    return PythonResult(text, images, status, round(seconds, 4), truncated)


def _transform(shell: Any, code: str) -> str:
    """IPython's input transformations (``%magic``, ``!cmd``), as a cell would get them."""
    transform = getattr(shell, "transform_cell", None)
    if transform is None:
        return code
    try:
        return str(transform(code))
    except Exception:  # let the parser report the problem on the code as written
        return code


def _compile(source: str) -> tuple[Any, Any]:
    """The statements to execute and the last expression to evaluate (either may be None)."""
    tree = ast.parse(source, filename=FILENAME, mode="exec")
    last = None
    final = tree.body[-1] if tree.body else None
    if isinstance(final, ast.Expr):
        tree.body.pop()
        last = compile(ast.Expression(final.value), FILENAME, "eval", dont_inherit=True)
    body = compile(tree, FILENAME, "exec", dont_inherit=True) if tree.body else None
    return body, last


def _execute(shell: Any, body: Any, last: Any, quiet: bool) -> str | None:
    """Runs under `run_guarded`: the code, then the text form of its last expression."""
    user_ns = shell.user_ns
    user_global_ns = getattr(shell, "user_global_ns", user_ns)
    trap = getattr(shell, "builtin_trap", None)
    with trap if trap is not None else contextlib.nullcontext():
        if body is not None:
            exec(body, user_global_ns, user_ns)
        if last is None:
            return None
        value = eval(last, user_global_ns, user_ns)
        if value is None or quiet:
            return None
        return _plain(shell, value)


def _plain(shell: Any, value: Any) -> str:
    """``value`` as a cell's output would show it (IPython's text/plain formatter: long sequences are cut)."""
    try:
        formatter = shell.display_formatter.formatters["text/plain"]
        text = formatter(value)
        if isinstance(text, str):
            return text
    except Exception:
        pass
    try:
        return repr(value)
    except Exception as exc:
        return f"<repr() failed / 无法显示: {type(exc).__name__}: {exc}>"


@contextlib.contextmanager
def _capture() -> Iterator[Any]:
    """Rich displays, through IPython's ``capture_output`` (stdout and stderr go to `_Capture`s instead)."""
    try:
        from IPython.utils.capture import capture_output
    except ImportError:  # no IPython: nothing displays
        yield None
        return
    with capture_output(stdout=False, stderr=False, display=True) as captured:
        yield captured


@contextlib.contextmanager
def _redirect(out: _Capture, err: _Capture) -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


class _Capture(io.TextIOBase):
    """A text stream that keeps the first and the last ``limit`` characters written and counts the rest, so a
    runaway ``print`` loop cannot fill the kernel's memory."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._head: list[str] = []
        self._head_len = 0
        self._tail: deque[str] = deque()
        self._tail_len = 0
        self._dropped = 0

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        n = len(s)
        room = self._limit - self._head_len
        if room > 0:
            self._head.append(s[:room])
            self._head_len += min(n, room)
            s = s[room:]
        if s:
            self._tail.append(s)
            self._tail_len += len(s)
            while self._tail_len - len(self._tail[0]) >= self._limit:
                gone = self._tail.popleft()
                self._tail_len -= len(gone)
                self._dropped += len(gone)
        return n

    def getvalue(self) -> str:
        head = "".join(self._head)
        tail = "".join(self._tail)
        dropped = self._dropped
        if len(tail) > self._limit:
            dropped += len(tail) - self._limit
            tail = tail[-self._limit:]
        if not dropped:
            return head + tail
        return f"{head}\n…[{dropped} characters of output not kept / 未保留 {dropped} 个字符的输出]…\n{tail}"


def _displays(outputs: list[Any], max_images: int) -> tuple[list[str], list[str]]:
    """Captured rich displays → (image data URLs, one note per display)."""
    images: list[str] = []
    notes: list[str] = []
    for output in outputs:
        data = getattr(output, "data", None) or {}
        plain = data.get("text/plain")
        kind = next((m for m in _IMAGE_MIMES if m in data), None)
        if kind is not None:
            payload = data[kind]
            raw = base64.b64decode(payload) if isinstance(payload, str) else bytes(payload)
            if len(images) < max_images:
                images.append(f"data:{kind};base64,{base64.b64encode(raw).decode('ascii')}")
                notes.append(f"<displayed: {kind} {_size(len(raw))} (image {len(images)})>")
            else:
                notes.append(f"<displayed: {kind} {_size(len(raw))} (not sent: image limit / 超出图片数量上限)>")
            continue
        rich = [m for m in data if m != "text/plain"]
        if not rich:
            if isinstance(plain, str):
                notes.append(plain)
            continue
        shown = ", ".join(f"{m} {_size(_length(data[m]))}" for m in rich)
        note = f"<displayed: {shown}>"
        if isinstance(plain, str) and plain.strip():
            text = plain if len(plain) <= DISPLAY_TEXT_CHARS else plain[:DISPLAY_TEXT_CHARS] + " …"
            note += "\n" + text
        notes.append(note)
    return images, notes


def _length(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "replace"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    return len(str(value))


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{round(n / 1024)} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _fignums() -> set[int]:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return set()
    try:
        return set(pyplot.get_fignums())
    except Exception:
        return set()


def _new_figures(before: set[int], room: int) -> tuple[list[str], list[str]]:
    """The figures the code made, as PNG data URLs; they stay open (they are the user's now)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return [], []
    images: list[str] = []
    notes: list[str] = []
    for num in sorted(_fignums() - before):
        if len(images) >= room:
            notes.append(f"<figure {num}: not sent (image limit / 超出图片数量上限)>")
            continue
        try:
            url = image(_figure(pyplot, num))["image_url"]["url"]
        except Exception as exc:
            notes.append(f"<figure {num}: could not be rendered / 无法渲染: {type(exc).__name__}: {exc}>")
            continue
        images.append(url)
        notes.append(f"<figure {num}: sent as an image>")
    return images, notes


def _figure(pyplot: Any, num: int) -> Any:
    """Figure ``num`` without making it the current one (falls back to ``plt.figure(num)``)."""
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    manager = getattr(getattr(helpers, "Gcf", None), "figs", {}).get(num)
    canvas = getattr(manager, "canvas", None)
    figure = getattr(canvas, "figure", None)
    return figure if figure is not None else pyplot.figure(num)


def _compose(stdout: str, stderr: str, notes: list[str], guarded: Guarded, timeout: float | None) -> str:
    parts: list[str] = []
    stdout, stderr = _ANSI.sub("", stdout), _ANSI.sub("", stderr)
    if stdout.strip():
        parts.append(stdout.rstrip("\n"))
    if stderr.strip():
        parts.append("[stderr]\n" + stderr.rstrip("\n"))
    parts.extend(notes)
    seconds = f"{guarded.seconds:.1f}"
    if guarded.error is None and isinstance(guarded.value, str):
        parts.append("Out: " + ("\n" if "\n" in guarded.value else "") + guarded.value)
    if guarded.status == "error" and guarded.error is not None:
        parts.append(_traceback(guarded.error))
    elif guarded.status == "timeout" and guarded.error is not None:
        limit = f"{timeout:g}" if timeout else "?"
        parts.append(_traceback(guarded.error, f"TimeoutError: 运行超时 / the code ran past its time limit of "
                                               f"{limit} s and was stopped\n"))
    elif guarded.status == "interrupted":
        final = f"KeyboardInterrupt: 已停止 / stopped by the user after {seconds} s\n"
        if guarded.error is not None:
            parts.append(_traceback(guarded.error, final))
        else:  # the code caught the interrupt and went on, or ended just as Stop came
            parts.append("[Stop was requested, but the code ran to its end / 用户请求了停止，但代码已运行完毕]")
    return "\n".join(parts)


def _traceback(exc: BaseException, final: str | None = None) -> str:
    """The traceback from the agent's code on (our own frames dropped), its last `MAX_FRAMES` frames."""
    te = traceback.TracebackException.from_exception(exc)
    frames = [f for f in te.stack if f.filename not in _OWN_FILES]
    omitted = max(0, len(frames) - MAX_FRAMES)
    te.stack = traceback.StackSummary.from_list(frames[omitted:])
    lines = list(te.format())
    if final is not None and lines:
        lines[-1] = final
    text = "".join(lines)
    if omitted:
        header = "Traceback (most recent call last):\n"
        at = text.rfind(header)
        if at >= 0:
            at += len(header)
            text = f"{text[:at]}  … {omitted} earlier frames omitted / 省略了 {omitted} 层调用\n{text[at:]}"
    return text.rstrip("\n")


def _bound(text: str, limit: int) -> tuple[str, bool]:
    """At most ``limit`` characters (and the note): the start and the end, the middle cut."""
    if len(text) <= limit:
        return text, False
    cut = len(text) - limit
    head = limit * 2 // 5
    tail = limit - head
    note = f"\n…[{cut} characters cut / 已截去 {cut} 个字符]…\n"
    return text[:head] + note + (text[-tail:] if tail else ""), True
