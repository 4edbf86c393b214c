"""A tiny HTTP/1.1 server that writes exactly the bytes it is told to, in the pieces it is told to.

The protocol simulator speaks well-formed ERNIE; the fuzz tests need the opposite: any body, cut anywhere,
over a real socket. Each response is close-delimited (no Content-Length, no chunked encoding), so the
client sees the body bytes exactly as the pieces were written. `/oauth/2.0/token` always succeeds, so the
Qianfan v1 provider can be fuzzed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

_TOKEN = json.dumps({"access_token": "24.0123456789abcdef0123456789abcdef.2592000.1.282335-1", "expires_in": 2592000})


@dataclass
class Reply:
    """What the next chat request gets: a status, a content type, and the body as pieces."""

    pieces: Iterable[bytes]
    status: int = 200
    content_type: str = "text/event-stream"
    gap: float = 0.0005  # seconds between pieces, so they tend to arrive as separate reads


@dataclass
class Served:
    """How the last response went."""

    bytes_sent: int = 0
    client_gone: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class RawServer:
    def __init__(self) -> None:
        self.reply = Reply([b""])
        self.served = Served()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="raw-http", daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    def __enter__(self) -> RawServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, reply: Reply) -> Served:
        """Use `reply` for the next chat request; returns its (live) record."""
        self.reply, self.served = reply, Served()
        return self.served

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        served = self.served
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            if b" /oauth/2.0/token" in head.split(b"\r\n", 1)[0]:
                body = _TOKEN.encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
                return
            reply = self.reply
            writer.write(f"HTTP/1.1 {reply.status} X\r\nContent-Type: {reply.content_type}\r\n"
                         "Connection: close\r\n\r\n".encode())
            await writer.drain()
            for piece in reply.pieces:
                writer.write(piece)
                await writer.drain()
                served.bytes_sent += len(piece)
                if reply.gap:
                    await asyncio.sleep(reply.gap)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            served.client_gone = True
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            served.done.set()
