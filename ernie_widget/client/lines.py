"""Splitting a response body into lines and classifying them: SSE data, `[DONE]`, bare JSON errors.

httpx2's `EventSource` drops lines whose field is not event/data/id/retry, so v1's bare JSON error
line and llama.cpp's `error:` line would be lost silently (docs/ernie-wire.md §8); we read lines ourselves.
"""

from __future__ import annotations

import json
from typing import Any, Final

from .errors import IncompleteStreamError

__all__ = ["DONE", "MAX_EVENT_BYTES", "SKIP", "LineSplitter", "classify_line"]

#: one event may not exceed 1 MiB (the same bound as httpx2.EventSource)
MAX_EVENT_BYTES: Final = 1024 * 1024

SKIP: Final = 0
DONE: Final = 1
DATA: Final = 2
ERROR: Final = 3


class LineSplitter:
    """Feed bytes, get complete lines (bytes, without the newline). Bounded: a line over the limit raises."""

    __slots__ = ("_buf", "_limit")

    def __init__(self, limit: int = MAX_EVENT_BYTES) -> None:
        self._buf = b""
        self._limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data if self._buf else data
        if b"\n" not in data:
            self._buf = buf
            if len(buf) > self._limit:
                self._buf = b""
                raise IncompleteStreamError(
                    f"单个事件超过 {self._limit // 1024} KiB / one stream event exceeded {self._limit // 1024} KiB"
                )
            return []
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        # only a buffer over the limit can hold a line over it: skip the per-line check otherwise
        if len(buf) > self._limit and any(len(line) > self._limit for line in (*lines, self._buf)):
            self._buf = b""
            raise IncompleteStreamError(
                f"单个事件超过 {self._limit // 1024} KiB / one stream event exceeded {self._limit // 1024} KiB"
            )
        return lines

    def flush(self) -> list[bytes]:
        rest, self._buf = self._buf, b""
        return [rest] if rest.strip() else []


def _loads(raw: bytes | str) -> Any:
    try:
        # decoding first skips json's Python-level encoding sniffing: this runs once per streamed chunk
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError:
        raise IncompleteStreamError("流中含有无效的 UTF-8 / the stream contained invalid UTF-8") from None
    except ValueError:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        raise IncompleteStreamError(
            f"流中的 JSON 无法解析 / a stream chunk was not valid JSON: {text[:80]!r}"
        ) from None


def classify_line(line: bytes) -> tuple[int, Any]:
    """(SKIP|DONE|DATA|ERROR, parsed object). ERROR means a bare JSON or `error:` line."""
    line = line.strip()
    if not line or line[:1] == b":":  # blank separator or comment (": keep-alive")
        return SKIP, None
    if line[:1] == b"{":  # v1: a bare JSON error line, not SSE
        return ERROR, _loads(line)
    if line.startswith(b"data:"):
        value = line[5:].strip()  # FastDeploy puts a space after the JSON
        if value == b"[DONE]":
            return DONE, None
        if not value:
            return SKIP, None
        return DATA, _loads(value)
    if line.startswith(b"error:"):  # llama.cpp's mid-stream error field
        return ERROR, _loads(line[6:].strip())
    return SKIP, None  # event:, id:, retry:, or a field we do not know
