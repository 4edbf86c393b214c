"""Code: functions, classes and modules by their source; cells; and the last error with the cell that raised it.

Code is text the user wrote, so key-shaped parts are masked (``QIANFAN_AK = "***"``) rather than refused (that is
`describe`'s job, for values). Sources come from ``inspect.getsource``, which finds a notebook cell's functions
through the ``linecache`` entries IPython keeps for every cell.
"""

from __future__ import annotations

import inspect
import linecache
import re
import traceback
import types
from collections.abc import Mapping
from typing import Any

from . import history
from .kinds import kind_of
from .rendered import Rendered, plural
from .textcut import clip

__all__ = ["render_callable", "render_cell", "render_error"]

#: the frames of a traceback that are shown, the innermost ones
FRAMES = 5
LINE_CHARS = 200
MESSAGE_CHARS = 1_000
_INPUT_NAME = re.compile(r"<ipython-input-(\d+)-[0-9a-f]+>")


def render_callable(value: Any, max_chars: int) -> Rendered | None:
    """A function, method, class or module; None for anything else."""
    cls = type(value)
    if issubclass(cls, types.ModuleType):
        doc = inspect.getdoc(value) or ""
        body = f"file: {getattr(value, '__file__', None)}\n" + clip(doc.split("\n\n")[0], max_chars // 2)
        return Rendered(f"module {value.__name__}", "module", body)
    if issubclass(cls, type):
        what, label = f"class {value.__qualname__}", "class"
    elif issubclass(cls, types.FunctionType | types.MethodType | types.BuiltinFunctionType):
        label = "method" if issubclass(cls, types.MethodType) else "function"
        what = f"{label} {value.__qualname__}{_signature(value)}"
    else:
        return None
    try:
        body = inspect.getsource(value)
    except (OSError, TypeError):  # built in, or defined where no source is kept (exec, a deleted file)
        docstring = inspect.getdoc(value)
        body = f"(source not available)\n{what}\n" + (f'"""{docstring}"""' if docstring else "")
    return Rendered(clip(what, LINE_CHARS), label, clip(body.rstrip(), max_chars))


def _signature(fn: Any) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):  # some builtins have none
        return "(…)"


def render_cell(n: int, source: str, max_chars: int, *, latest: bool = False) -> Rendered:
    lines = plural(source.count("\n") + (0 if source.endswith("\n") else 1), "line")
    kind = f"the latest cell, In[{n}], {lines}" if latest else f"cell In[{n}], {lines}"
    return Rendered(kind, f"cell, {lines}", clip(source, max_chars))


def render_error(exc: BaseException, ns: Mapping[str, Any], shell: Any, max_chars: int) -> Rendered:
    """The exception's type and message, its innermost frames, its cause, and the source of the cell it came from."""
    name = kind_of(exc)
    message = clip(_message(exc), MESSAGE_CHARS)
    first_line = clip(message.partition("\n")[0], LINE_CHARS)
    lines = [f"{name}: {message}" if message else name]
    notes = getattr(exc, "__notes__", None)
    if type(notes) is list:
        lines += [f"note: {clip(str(note), LINE_CHARS)}" for note in notes[:3]]
    first, total, cell_number, cell_file = _walk(exc, shell)
    if first is not None:
        frames = traceback.extract_tb(first, limit=-FRAMES)  # only the kept frames read their source lines
        shown = f"last {len(frames)} of {total} frames" if total > len(frames) else plural(total, "frame")
        lines.append(f"traceback ({shown}, most recent call last):")
        for frame in frames:
            where = _cell_label(frame.filename, shell) or frame.filename
            lines.append(clip(f"  {where}, line {frame.lineno}, in {frame.name}", LINE_CHARS))
            if frame.line:
                lines.append(clip(f"    {frame.line.strip()}", LINE_CHARS))
    linked = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if linked is not None:
        how = "caused by" if exc.__cause__ is not None else "raised while handling"
        lines.append(clip(f"{how}: {kind_of(linked)}: {_message(linked)}".partition("\n")[0], LINE_CHARS))
    source = _cell_source(exc, ns, shell, cell_number, cell_file)
    if source:
        where = f" (In[{cell_number}])" if cell_number else ""
        lines.append(f"the cell that raised{where}:")
        lines.append(clip(source.rstrip(), max_chars // 2))
    return Rendered(clip(f"{name}: {first_line}" if first_line else name, LINE_CHARS), name, "\n".join(lines))


def _message(exc: BaseException) -> str:
    try:
        return str(exc)  # the exception's own __str__: user code, under the caller's time limit
    except Exception as err:
        return f"(str() of the exception failed: {type(err).__name__})"


def _walk(exc: BaseException, shell: Any) -> tuple[types.TracebackType | None, int, int | None, str | None]:
    """Where the shown traceback starts (at the outermost cell frame: IPython's own frames above it say nothing),
    how many frames that leaves, and that cell's number and file (the cell that ran)."""
    start, total, number, filename = exc.__traceback__, 0, None, None
    tb = exc.__traceback__
    while tb is not None:
        total += 1
        if filename is None:
            name = tb.tb_frame.f_code.co_filename
            found = _cell_number(name, shell)
            if found is not None:
                start, number, filename, total = tb, found, name, 1
        tb = tb.tb_next
    if filename is None and isinstance(exc, SyntaxError) and exc.filename:  # the cell did not even compile
        number, filename = _cell_number(exc.filename, shell), exc.filename
    return start, total, number, filename


def _cell_number(filename: str, shell: Any) -> int | None:
    """The execution count of the cell compiled under ``filename``, if it is one."""
    mapping = getattr(getattr(shell, "compile", None), "_filename_map", None)  # IPython's compiler records it
    if isinstance(mapping, dict) and type(mapping.get(filename)) is int:
        return int(mapping[filename])
    match = _INPUT_NAME.fullmatch(filename)
    return int(match.group(1)) if match else None


def _cell_label(filename: str, shell: Any) -> str | None:
    number = _cell_number(filename, shell)
    return f"In[{number}]" if number is not None else None


def _cell_source(exc: BaseException, ns: Mapping[str, Any], shell: Any, number: int | None, filename: str | None) -> str:
    if number:
        source = history.cell_source(ns, number)
        if source:
            return source
    if filename:
        lines = linecache.getlines(filename)
        if lines:
            return "".join(lines)
    result = getattr(shell, "last_execution_result", None)  # the error came from the last cell that ran
    if result is not None and any(exc is getattr(result, f, None) for f in ("error_in_exec", "error_before_exec")):
        raw = getattr(getattr(result, "info", None), "raw_cell", None)
        if isinstance(raw, str):
            return raw
    return ""
