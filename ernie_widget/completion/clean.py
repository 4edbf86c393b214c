"""Turn what the model wrote into the ghost text to show: no fences, no repeated prefix, nothing past the suffix.

Runs on every update of a stream (the text so far) and once on the final text, so each rule holds back text
that could still turn out to be a fence or a repetition rather than show it and take it back. Works on
characters (``str``), never bytes, so Chinese text is cut only between characters.
"""

from __future__ import annotations

from .prompt import CURSOR

__all__ = ["clean_completion"]

_FENCE = "```"
_CLOSERS = {")": "(", "]": "[", "}": "{"}
#: the last lines of the prefix a model may repeat before its continuation
_REPEATED_LINES = 5
#: the shortest tail of the current line taken as repeated when the model starts with it
_MIN_OVERLAP = 4


def _strip_fences(text: str, final: bool) -> str:
    """Drop an opening ```lang line and everything from a closing ``` on."""
    head = text.lstrip()
    if head.startswith(_FENCE):
        newline = head.find("\n")
        if newline < 0:
            return ""  # still the fence line (```python): nothing to show yet
        text = head[newline + 1:]
        end = text.find(_FENCE)
        if end >= 0:
            text = text[:end]
        elif not final:
            # a closing fence may be arriving: hold back a trailing partial one
            text = text.rstrip("`")
    elif not final and _FENCE.startswith(head) and head:
        return ""  # "`" or "``": maybe a fence
    return text


def _strip_repeated_prefix(text: str, prefix: str, final: bool) -> str:
    """Drop a repetition of the prefix's last lines (the current line at least) from the start."""
    lines = prefix.split("\n")
    for n in range(min(_REPEATED_LINES, len(lines)), 0, -1):
        tail = "\n".join(lines[-n:])
        if not tail:
            continue
        if text.startswith(tail) and (tail.strip() or n == 1):
            return text[len(tail):]
        if not final and tail.strip() and tail.startswith(text) and text.strip():
            return ""  # the model is part-way through repeating the prefix: show nothing yet
    current = lines[-1]
    # the current line repeated without its indentation (the model re-indents): "    x = " → "x = 1"
    stripped = current.lstrip()
    if stripped != current and len(stripped) >= 2 and text.lstrip().startswith(stripped):
        return text.lstrip()[len(stripped):]
    # the end of the current line repeated ("print('你好，世" then "你好，世界"): at least four characters, not all
    # the same one, so a continuation that merely starts like the line ends ("====" after "# ====") stays
    for k in range(min(len(text), len(current)), _MIN_OVERLAP - 1, -1):
        head = text[:k]
        if current.endswith(head) and len(set(head.strip())) >= 2:
            return text[k:]
    return text


def _cut_at_suffix(text: str, suffix: str) -> str:
    """Drop the text that rewrites the suffix: from a line equal to the suffix's first line, or a closing
    bracket the suffix already has."""
    first = next((line.strip() for line in suffix.split("\n") if line.strip()), "")
    if len(first) >= 2:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if i > 0 and line.strip() == first:
                kept = "\n".join(lines[:i])
                if suffix.startswith("\n"):
                    return kept
                return kept + "\n"  # the suffix (with its own indentation) starts the next line
        # the completion ends with the suffix itself, on the same line: "x)" before ")"
        if len(suffix.split("\n")[0]) >= 2 and text.endswith(suffix.split("\n")[0]):
            return text[: -len(suffix.split("\n")[0])]
    lead = suffix.lstrip(" ")[:1]
    opener = _CLOSERS.get(lead)
    if opener and text.endswith(lead) and text.count(lead) > text.count(opener):
        return text[:-1]  # "x)" with ")" after the cursor: the model closed what the suffix closes
    return text


def clean_completion(text: str, prefix: str, suffix: str, *, final: bool = False) -> str:
    """The ghost text for the model's ``text`` so far, between ``prefix`` and ``suffix``.

    ``final`` is False while the answer streams: text that may still become a fence or a repetition of the
    prefix is held back until it is known."""
    text = text.replace("\r\n", "\n").replace(CURSOR, "")
    text = _strip_fences(text, final)
    text = _strip_repeated_prefix(text, prefix, final)
    if suffix:
        text = _cut_at_suffix(text, suffix)
    if final and (not suffix or suffix.startswith("\n")):
        text = text.rstrip("\n")  # a trailing newline would push the suffix (or nothing) one line down
    return text
