"""Hand-rolled HTTP/1.1 for the simulator: read requests, watch for disconnects, write responses.

Stdlib only on purpose: the simulator must behave like a real server at the byte level (chunked
framing, a socket cut mid-body, writes split inside a UTF-8 character), which a framework would hide.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import zlib
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from ._records import RecordedRequest

__all__ = ["BadRequest", "ClientGone", "Connection", "Request", "ResponseWriter"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024
_BATCH_BYTES = 64 * 1024  # with no delay between events, write this much per socket write
_SPLIT_PAUSE = 0.005  # between the pieces of a split event, so the client really reads them apart

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class BadRequest(Exception):
    """The bytes on the connection are not an HTTP/1.1 request we can parse."""


class ClientGone(Exception):
    """The client closed or reset the connection."""


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: dict[str, str]
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


class Connection:
    """One client connection: buffered request reading and prompt disconnect detection.

    While a response is being produced a watcher task keeps reading the socket: EOF or a reset means
    the client went away, which ends a stall or an endless stream at once (not at the next write).
    Bytes it reads early (a pipelined request) stay in the buffer for the next `read_request`.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.eof = False
        self.number = 0  # the simulator numbers connections so tests can see reuse
        self.gone = asyncio.Event()
        self.current: RecordedRequest | None = None  # the request whose response is being written
        self.response_complete = False
        self._watcher: asyncio.Task[None] | None = None

    async def _fill(self) -> bool:
        try:
            data = await self.reader.read(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def _read_until(self, sep: bytes, limit: int) -> bytes | None:
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise BadRequest("header section too large")
            start = max(0, len(self.buf) - len(sep) + 1)
            if self.eof or not await self._fill():
                if self.buf:
                    raise BadRequest("connection closed mid-request")
                return None

    async def _read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.eof or not await self._fill():
                raise BadRequest("connection closed mid-body")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_request(self) -> Request | None:
        """The next request on the connection, or None when the client closed it cleanly."""
        head = await self._read_until(b"\r\n\r\n", _MAX_HEAD)
        while head == b"":  # tolerate stray CRLFs between requests (RFC 9112 §2.2)
            head = await self._read_until(b"\r\n\r\n", _MAX_HEAD)
        if head is None:
            return None
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError as exc:
            raise BadRequest(f"bad request line {lines[0]!r}") from exc
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(f"bad header line {line!r}")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked_body()
        else:
            length = int(headers.get("content-length", "0") or 0)
            if length > _MAX_BODY:
                raise BadRequest("body too large")
            body = await self._read_exactly(length)
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        return Request(method.upper(), target, unquote(parts.path), query, version, headers, body)

    async def _read_chunked_body(self) -> bytes:
        body = bytearray()
        while True:
            size_line = await self._read_until(b"\r\n", _MAX_HEAD)
            if size_line is None:
                raise BadRequest("connection closed mid-body")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while await self._read_until(b"\r\n", _MAX_HEAD):  # trailers, up to the empty line
                    pass
                return bytes(body)
            body += await self._read_exactly(size)
            await self._read_exactly(2)
            if len(body) > _MAX_BODY:
                raise BadRequest("body too large")

    # -- disconnect watching -------------------------------------------------------------------------

    def begin_response(self, record: RecordedRequest | None) -> None:
        self.current = record
        self.response_complete = False
        if self._watcher is None and not self.eof:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        elif self.eof:
            self._mark_gone()

    async def end_response(self) -> None:
        self.response_complete = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    async def _watch(self) -> None:
        while await self._fill():
            if len(self.buf) > _MAX_BODY:  # a client flooding us while we answer: stop reading
                return
        self._mark_gone()

    def _mark_gone(self) -> None:
        if self.current is not None and not self.response_complete:
            self.current.disconnected = True
        self.gone.set()

    def check(self) -> None:
        """Raise ClientGone if the client went away."""
        if self.gone.is_set() or self.writer.transport.is_closing():
            self._mark_gone()
            raise ClientGone

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, waking at once (with ClientGone) if the client disconnects."""
        if seconds <= 0:
            await asyncio.sleep(0)  # still yield, so an endless zero-interval stream cannot starve the loop
            self.check()
            return
        if seconds == float("inf"):
            await self.gone.wait()
        elif seconds <= 0.02:  # cheap path for fast streams; detection within 20 ms is prompt enough
            await asyncio.sleep(seconds)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self.gone.wait()
        self.check()

    async def write(self, data: bytes) -> None:
        self.check()
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            self._mark_gone()
            raise ClientGone from exc

    def close(self) -> None:
        """Close the socket (FIN after pending data): a cut mid-body looks like a protocol error."""
        with contextlib.suppress(Exception):
            self.writer.close()


def _reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


def head_bytes(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _split_points(data: bytes) -> list[int]:
    """Cut positions inside multi-byte UTF-8 characters (before a continuation byte), at most two."""
    inside = [i for i in range(1, len(data)) if 0x80 <= data[i] <= 0xBF]
    if not inside:
        return [len(data) // 2] if len(data) > 1 else []
    picks = {inside[0], inside[len(inside) // 2]}
    return sorted(picks)


class ResponseWriter:
    """Writes one response body: SSE events, optional gzip, chunked or Content-Length framing.

    Events are framed and buffered; the buffer goes to the socket when `immediate` is set (the answer
    has pauses, so every event must leave now), when it grows past 64 KiB, or on `flush()`/`finish()`.
    """

    def __init__(
        self,
        conn: Connection,
        record: RecordedRequest,
        *,
        chunked: bool = True,
        gzip: bool = False,
        split_utf8: bool = False,
        crlf: bool = False,
        immediate: bool = False,
    ) -> None:
        self.conn = conn
        self.record = record
        self.chunked = chunked
        self.split_utf8 = split_utf8 and not gzip  # splitting compressed bytes proves nothing
        self.immediate = immediate or self.split_utf8
        self.nl = "\r\n" if crlf else "\n"
        self._gz = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
        self._buf = bytearray()
        self._events = record.events

    async def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.record.status = status
        if self._gz is not None:
            headers = [*headers, ("Content-Encoding", "gzip")]
        if self.chunked:
            headers = [*headers, ("Transfer-Encoding", "chunked")]
        await self.conn.write(head_bytes(status, headers))

    def _frame(self, data: bytes) -> bytes:
        if self.chunked and data:
            return b"%x\r\n%b\r\n" % (len(data), data)
        return data

    async def raw(self, data: bytes) -> None:
        """Queue body bytes (compressed and framed as needed)."""
        if self._gz is not None:
            data = self._gz.compress(data) + self._gz.flush(zlib.Z_SYNC_FLUSH)
        if self.split_utf8:
            await self._write_split(data)
            return
        self._buf += self._frame(data)
        if self.immediate or len(self._buf) >= _BATCH_BYTES:
            await self.flush()

    async def _write_split(self, data: bytes) -> None:
        await self.flush()
        points = _split_points(data)
        bounds = [0, *points, len(data)]
        for n, (a, b) in enumerate(itertools.pairwise(bounds)):
            if b < len(data) and 0x80 <= data[b] <= 0xBF:
                self.record.split_mid_char = True
            await self.conn.write(self._frame(data[a:b]))
            self.record.writes += 1
            if n < len(bounds) - 2:
                await self.conn.pause(_SPLIT_PAUSE)

    async def event(self, payload: str, *, trailing_space: bool = False) -> None:
        """A `data: <payload>` SSE event (recorded in `record.events`)."""
        self._events.append(payload)
        sp = " " if trailing_space else ""
        await self.raw(f"data: {payload}{sp}{self.nl}{self.nl}".encode())

    async def line(self, text: str) -> None:
        """An arbitrary line (SSE comment, `error:` field, bare JSON) followed by a blank line."""
        await self.raw(f"{text}{self.nl}{self.nl}".encode())

    async def flush(self) -> None:
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            await self.conn.write(data)
            self.record.writes += 1
            # drain() does not yield while the socket keeps up; yield so concurrent streams interleave
            await asyncio.sleep(0)
        else:
            self.conn.check()

    async def finish(self) -> None:
        """Complete the body: flush gzip, send the terminating chunk."""
        if self._gz is not None:
            tail = self._gz.flush(zlib.Z_FINISH)
            self._gz = None
            self._buf += self._frame(tail)
        if self.chunked:
            self._buf += b"0\r\n\r\n"
        await self.flush()
        self.conn.response_complete = True
