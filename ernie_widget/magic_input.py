"""What reaches `%ernie` from the notebook's input: the prompt as typed, quoted option values, a line ending in
'?', and the tracebacks `{Err[n]}` and `--fix` read."""

from __future__ import annotations

import re
import traceback
from typing import Any

__all__ = ["ask_questions_not_help", "raw_prompt", "record_errors", "unquote"]


def unquote(value: Any) -> Any:
    """'"text"' → 'text' (one pair of matching quotes); anything else unchanged."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def raw_prompt(line: str, words: list[str]) -> str:
    """The line magic's prompt as typed: the text after the options, spacing and punctuation intact.

    IPython's (non-POSIX) split keeps every token a literal slice of the line, so when the prompt
    words are the line's last tokens, the prompt is the line from the first of them on.
    """
    from IPython.utils.process import arg_split

    if not words:
        return ""
    tokens = arg_split(line, posix=False, strict=False)
    if tokens[-len(words):] != words:
        return " ".join(words)
    pos = 0
    starts = []
    for tok in tokens:
        pos = line.find(tok, pos)
        if pos < 0:
            return " ".join(words)
        starts.append(pos)
        pos += len(tok)
    return line[starts[-len(words)]:].strip()


def record_errors(shell: Any) -> Any:
    """A post_run_cell hook filling `Err[n]` with the traceback text of cells that failed."""

    def hook(result: Any) -> None:
        exc = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        if exc is None:
            return
        count = getattr(result, "execution_count", None) or shell.execution_count
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-8:])
        from .client.redact import redact

        shell.user_ns.setdefault("Err", {})[count] = redact(text)

    return hook


_QUESTION_LINE = re.compile(r"^(?P<indent>[ \t]*)%ernie[ \t]+(?P<rest>\S.*\?)[ \t]*$")


def ask_questions_not_help(lines: list[str]) -> list[str]:
    """An input transformer: ``%ernie what is a DataFrame?`` asks, instead of opening IPython's help.

    IPython reads a line that ends in ``?`` as a help request before any magic runs; this rewrites such a
    ``%ernie`` line into the call it means. ``%ernie?`` and ``%ernie??`` (help on the magic) stay help.
    """
    out = []
    for line in lines:
        m = _QUESTION_LINE.match(line.rstrip("\n"))
        if m and m.group("rest").lstrip("?").strip():
            newline = "\n" if line.endswith("\n") else ""
            line = f"{m.group('indent')}get_ipython().run_line_magic('ernie', {m.group('rest')!r}){newline}"
        out.append(line)
    return out
