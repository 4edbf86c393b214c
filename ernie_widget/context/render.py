"""What one @-mention sends: `describe` turns a name into a bounded `Mention` (text for the model, image parts).

Bounds. Text: at most ``max_tokens`` (estimated), and renderers work to a character budget so they never build
more than that. Time: rendering a value runs under `time_limit` (`TIME_LIMIT`, SIGALRM on the main thread); past
it only the value's type and cheap size are sent, with a "timed out" note. Only Python-level code can be cut
short: a C-level loop in a hostile ``__repr__`` (or any C extension's) runs to its end, which is why known types
(builtins, pandas, polars, numpy, matplotlib, PIL, code) are rendered by our own bounded code first, cutting
before formatting, and only unknown objects ever reach their own ``repr``.

Secrets: see `keyguard`. A value holding a key-shaped string raises `MentionError`; all text is masked as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ernie_widget.client.messages import estimate_tokens
from ernie_widget.protocol import ContextItem

from . import history
from .errors import MentionError
from .keyguard import KeyShaped, check_value, mask, refusal
from .kinds import Known, kind_of, known, module_of, size_of
from .render_arrays import render_ndarray
from .render_builtins import render_builtin
from .render_code import render_callable, render_cell, render_error
from .render_frames import render_frame
from .render_images import is_image, render_image
from .rendered import Rendered
from .textcut import clip, cut_to_tokens
from .timelimit import RenderTimeout, time_limit

__all__ = ["IMAGE_TIME_LIMIT", "TIME_LIMIT", "Mention", "describe"]

#: seconds a value may take to render before only its type is sent
TIME_LIMIT = 0.5
#: drawing a figure or encoding an image for a vision model is library work that takes longer (≈0.3 s)
IMAGE_TIME_LIMIT = 5.0
#: characters budgeted per token while rendering (the token cut after it is exact to the estimate)
CHARS_PER_TOKEN = 4
_CUT = "…[cut to the mention's size limit]"
_NAME_CHARS = 80


@dataclass(frozen=True)
class Mention:
    """One mention, ready to send: ``item`` goes in the message's context, ``images`` (data URLs) as image parts."""

    item: ContextItem
    images: list[str] = field(default_factory=list)


def describe(
    name: str, ns: Mapping[str, Any], *, shell: Any = None, vision: bool = False, max_tokens: int = 2000
) -> Mention:
    """The context for ``@name``: a variable of ``ns``, or ``error``, ``cell``, ``In[n]``, ``Out[n]``.

    Raises `MentionError` (bilingual) when there is no such thing, or when the value holds a key-shaped string.
    ``shell`` (the IPython shell) finds the cell an error came from and which cell is the latest; ``vision``
    sends figures and images as image parts.
    """
    max_chars = max(max_tokens * CHARS_PER_TOKEN, 400)
    try:
        rendered = _render(name, ns, shell, vision, max_chars)
    except KeyShaped as found:
        raise refusal(clip(name, _NAME_CHARS), found.hint) from None
    text = f"@{name}: {rendered.kind}" + (f"\n{rendered.body}" if rendered.body else "")
    text = cut_to_tokens(mask(text), max_tokens, _CUT)
    item: ContextItem = {"name": name, "label": clip(rendered.label, 60), "tokens": estimate_tokens(text), "text": text}
    return Mention(item, rendered.images)


def _render(name: str, ns: Mapping[str, Any], shell: Any, vision: bool, max_chars: int) -> Rendered:
    special = history.parse_special(name)
    shown = clip(name, _NAME_CHARS)
    if special is None:
        if name not in ns:
            raise MentionError(
                f"找不到变量 {shown}：请先运行定义它的单元格，或检查拼写 / "
                f"no variable named {shown} in the notebook: run the cell that defines it first, or check the spelling"
            )
        return _value(ns[name], max_chars, vision)
    what, n = special
    if what == "error":
        exc = history.last_exception()
        if exc is None:
            raise MentionError("还没有单元格出错 / no cell has raised an error yet, so @error has nothing to send")
        return _timed(lambda: render_error(exc, ns, shell, max_chars), Rendered(kind_of(exc), kind_of(exc)), TIME_LIMIT)
    if what == "cell":
        latest = history.latest_cell(ns, shell)
        if latest is None:
            raise MentionError("还没有运行过单元格 / no cell has run yet, so @cell has nothing to send")
        return render_cell(latest[0], latest[1], max_chars, latest=True)
    assert n is not None
    if what == "In":
        source = history.cell_source(ns, n)
        if source is None:
            raise MentionError(f"没有单元格 In[{n}] / there is no cell In[{n}] in this session's history")
        return render_cell(n, source, max_chars)
    value = history.output(ns, n)
    if value is history.MISSING:
        raise MentionError(
            f"没有输出 Out[{n}] / cell {n} has no result in Out (a cell has one when its last line is an expression)"
        )
    return _value(value, max_chars, vision)


def _value(value: Any, max_chars: int, vision: bool) -> Rendered:
    """A value, by the first renderer that knows its type, within the time limit."""

    def run() -> Rendered:
        try:
            return _known(value, max_chars, vision) or _generic(value, max_chars)
        except (KeyShaped, RenderTimeout):
            raise
        except Exception as exc:  # a known type that failed oddly: its repr may still say something
            rendered = _generic(value, max_chars)
            rendered.body = f"(summary failed: {type(exc).__name__}; its repr follows)\n{rendered.body}"
            return rendered

    size = size_of(value)
    plain = Rendered(kind_of(value) + (f", {size}" if size else ""), f"{kind_of(value)} {size}".strip())
    return _timed(run, plain, IMAGE_TIME_LIMIT if vision and is_image(value) else TIME_LIMIT)


def _known(value: Any, max_chars: int, vision: bool) -> Rendered | None:
    if known(value) == Known.NDARRAY:
        return render_ndarray(value, max_chars)
    return (
        render_builtin(value, max_chars)
        or render_frame(value, max_chars)
        or render_image(value, max_chars, vision=vision)
        or render_callable(value, max_chars)
    )


def _generic(value: Any, max_chars: int) -> Rendered:
    """Anything else: its type and its own ``repr``, cut to size (and refused when key-shaped)."""
    cls = type(value)
    kind = f"{module_of(cls)}.{kind_of(value)} object".lstrip(".")
    try:
        text = repr(value)
        if type(text) is not str:
            raise TypeError("__repr__ returned a non-string")
    except Exception as exc:
        return Rendered(kind, kind_of(value), f"(repr raised {type(exc).__name__}: nothing more is known)")
    check_value(text, shown=max_chars)
    return Rendered(kind, kind_of(value), clip(text, max_chars))


def _timed(run: Callable[[], Rendered], fallback: Rendered, seconds: float) -> Rendered:
    try:
        with time_limit(seconds):
            return run()
    except RenderTimeout:
        fallback.body = f"(timed out after {seconds:g} s while rendering it: only its type is sent)"
        return fallback
