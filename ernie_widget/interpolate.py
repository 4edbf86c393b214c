"""Prompt interpolation for ``%%ernie`` and batch generation: ``{name}``, ``{In[n]}``, ``{Out[n]}``, ``{Err[n]}``.

Unlike ``str.format_map`` (what jupyter-ai uses, see jupyterlab/jupyter-ai#967 and #1260) only these
fields are recognised; every other brace is ordinary text, so prompts that contain code, JSON, set
comprehensions, f-strings or LaTeX never raise and are never silently rewritten::

    {name}            a Python identifier, looked up in ``row`` first, then in the namespace
    {In[3]} {In[-2]}  a cell's input   (namespace["In"], a list)
    {Out[3]}          a cell's result  (namespace["Out"], a dict keyed by execution count)
    {Err[3]}          a cell's error   (namespace["Err"], a dict of exception text)
    {{name}}          the literal text ``{name}`` (double the braces of a field to keep it)

Substitution is a single pass: a value containing braces is inserted as is, never re-read.
Values are made prompt-sized (DataFrames become a schema plus ``head(5)``; long values are cut with
a ``… (N more chars)`` marker) and key-shaped strings in them are redacted.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["format_value", "interpolate"]


# One scan over the template. Alternatives, tried left to right at each position:
#   {{field}}  → the field's text with single braces (escape)
#   {field}    → the field's value
# A field is an identifier or In/Out/Err[int]. Anything else, including lone "{{" and "}}" as they
# appear in nested JSON ({"a": {"b": 1}}) or LaTeX (\frac{1}{x^{2}}), is left untouched.
# Identifiers follow Python's rules, so `{变量}` is a field too (`[^\W\d]\w*` is the Unicode form).
_FIELD = r"(?:(?P<hist>In|Out|Err)\[(?P<index>-?[0-9]+)\]|(?P<name>[^\W\d]\w*))"
_PATTERN = re.compile(r"\{\{(?P<escaped>" + _FIELD.replace("?P<", "?P<e_") + r")\}\}|\{" + _FIELD + r"\}")

_MISSING = object()


def interpolate(
    template: str,
    namespace: Mapping[str, Any],
    *,
    row: Mapping[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
    max_value_chars: int = 4000,
    named_blocks: bool = False,
) -> str:
    """Replace ``{name}``/``{In[n]}``/``{Out[n]}``/``{Err[n]}`` fields in ``template``.

    ``row`` (a batch row) shadows ``namespace``. Unknown fields stay literal and ``warn`` is called
    once, with one bilingual line naming them. Each value is formatted by :func:`format_value`.
    Negative indexes count back from the current cell for all three histories, so ``{In[-2]}``
    and ``{Out[-2]}`` are the input and result of the same, previous, cell.

    ``named_blocks=True`` (the magics): a value that is long or spans lines (a DataFrame, an array, a cell) is
    not pasted into the sentence. The sentence names it (`` `df` (DataFrame, below) ``) and the value follows
    the prompt as a fenced block headed by its name, so the model knows what the variable is called.
    Scalars and short strings stay inline.
    """
    missing: list[str] = []
    blocks: dict[str, str] = {}

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped") is not None:
            return "{" + match.group("escaped") + "}"
        value = _lookup(match, namespace, row)
        if value is _MISSING:
            if match.group(0) not in missing:
                missing.append(match.group(0))
            return match.group(0)
        text = format_value(value, max_value_chars)
        if named_blocks and ("\n" in text or len(text) > INLINE_VALUE_CHARS):
            label = match.group(0)[1:-1]  # df, In[3], …
            blocks.setdefault(label, _describe_block(label, value, text))
            return f"`{label}` ({_kind(value)}, below)"
        return text

    result = _PATTERN.sub(substitute, template)
    if blocks:
        result = result.rstrip() + "\n\n" + "\n\n".join(blocks.values())
    if missing and warn is not None:
        fields = ", ".join(missing)
        warn(f"未找到，已按原文保留 / Not found, left as literal text: {fields}")
    return result


#: a value longer than this (or on more than one line) goes after the prompt as a named block
INLINE_VALUE_CHARS = 200


def _kind(value: Any) -> str:
    return "text" if isinstance(value, str) else type(value).__name__


def _describe_block(label: str, value: Any, text: str) -> str:
    """`` `df` — DataFrame:`` and the value in a fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"`{label}` — {_kind(value)}:\n{fence}\n{text}\n{fence}"


def _lookup(match: re.Match[str], namespace: Mapping[str, Any], row: Mapping[str, Any] | None) -> Any:
    name = match.group("name")
    if name is not None:
        if row is not None and name in row:
            return row[name]
        return namespace.get(name, _MISSING)
    return _history(namespace, match.group("hist"), int(match.group("index")))


def _history(namespace: Mapping[str, Any], kind: str, index: int) -> Any:
    store = namespace.get(kind)
    inputs = namespace.get("In")
    if index < 0 and isinstance(inputs, list):
        # In[-1] is the cell being run (IPython appends it before execution); Out/Err are keyed by
        # execution count, so resolve the same way to keep In[-k], Out[-k], Err[-k] aligned.
        index += len(inputs)
        if index < 0:
            return _MISSING
    if isinstance(store, list):
        return store[index] if -len(store) <= index < len(store) else _MISSING
    if isinstance(store, Mapping):
        if index in store:
            return store[index]
        if index < 0 and store:  # no In list to align with: count back over the recorded keys
            keys = sorted(k for k in store if isinstance(k, int))
            return store[keys[index]] if -len(keys) <= index else _MISSING
    return _MISSING


# ---------------------------------------------------------------------------------------------------
# Values


def format_value(value: Any, max_chars: int = 4000) -> str:
    """Format ``value`` for a prompt: str as is, DataFrame-like as schema + head, others as repr.

    The result is redacted (key-shaped strings, registered secrets) and at most about
    ``max_chars`` characters plus a ``… (N more chars)`` marker.
    """
    from ernie_widget.client.redact import redact  # lazy: keeps `import ernie_widget.interpolate` light

    if isinstance(value, str):
        text = value
    elif _is_dataframe_like(value):
        text = _describe_frame(value, max_chars)
    else:
        text = _safe_repr(value, max_chars)
    # Redact before cutting, so a cut never leaves half a key behind that no rule recognises.
    # Only a bounded prefix is examined: a 10 MB string is not scanned to keep 4000 characters.
    head = redact(text[: max_chars + 512])
    return _truncate(head, max_chars, extra=len(text) - min(len(text), max_chars + 512))


def _truncate(text: str, max_chars: int, *, extra: int = 0) -> str:
    over = len(text) - max_chars + extra
    if over <= 0:
        return text
    return f"{text[:max_chars]}… ({over} more chars)"


def _is_dataframe_like(value: Any) -> bool:
    if isinstance(value, type):
        return False
    try:
        return hasattr(value, "shape") and hasattr(value, "dtypes") and callable(getattr(value, "head", None))
    except Exception:
        return False


_MAX_COLUMNS = 40


def _describe_frame(frame: Any, max_chars: int) -> str:
    """Shape, ``column: dtype`` lines and ``head(5)``: what a model needs, never a full dump."""
    try:
        shape = tuple(frame.shape)
    except Exception:
        shape = ()
    lines = [f"{type(frame).__name__} shape={shape}"]
    dtypes = frame.dtypes
    columns = getattr(frame, "columns", None)
    items: list[tuple[Any, Any]] | None = None
    if hasattr(dtypes, "items"):  # pandas: a Series of dtypes indexed by column
        items = list(dtypes.items())
    elif isinstance(dtypes, list | tuple) and columns is not None:  # polars: a list of dtypes
        items = list(zip(columns, dtypes, strict=False))
    if items is not None:
        lines.append("columns:")
        lines += [f"  {name}: {dtype}" for name, dtype in items[:_MAX_COLUMNS]]
        if len(items) > _MAX_COLUMNS:
            lines.append(f"  … ({len(items) - _MAX_COLUMNS} more columns)")
    else:  # a Series: one dtype
        lines.append(f"name: {getattr(frame, 'name', None)}, dtype: {dtypes}")
    lines.append("head(5):")
    try:
        head = frame.head(5)
        to_string = getattr(head, "to_string", None)
        lines.append(to_string(max_cols=20, max_colwidth=60) if callable(to_string) else str(head))
    except Exception:
        try:
            lines.append(str(frame.head(5)))
        except Exception as exc:  # a broken frame still yields its schema
            lines.append(f"<head() failed: {type(exc).__name__}>")
    return _truncate("\n".join(lines), max_chars)


def _safe_repr(value: Any, max_chars: int) -> str:
    # reprlib bounds the work for big builtin containers (a 10-million-item list is not fully
    # repr'd just to keep 4000 characters); other objects use their own repr.
    try:
        if isinstance(value, list | tuple | dict | set | frozenset):
            short = reprlib.Repr()
            short.maxlevel = 4
            short.maxlist = short.maxtuple = short.maxset = short.maxfrozenset = 200
            short.maxdict = 100
            short.maxstring = short.maxother = max_chars
            return short.repr(value)
        return repr(value)
    except Exception as exc:
        return f"<{type(value).__name__} object (repr failed: {type(exc).__name__})>"
