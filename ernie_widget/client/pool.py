"""The connections and the concurrency limit a client keeps per event loop.

httpx2 and aiohttp pools belong to the loop that created them (their sockets and locks are bound to it), so a
client used from several loops — the private loop of the widget and magics, a user's `asyncio.run` — keeps one
`LoopPool` each.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from typing import TYPE_CHECKING

from .defaults import USER_AGENT
from .transport import Httpx2Transport, Transport

if TYPE_CHECKING:
    import httpx2

__all__ = ["LoopPool", "open_pool", "ssl_context"]


class LoopPool:
    """An httpx2 client (authentication requests, and chat requests on the default transport), the transport
    that carries chat requests, and the semaphore that bounds requests in flight."""

    __slots__ = ("http", "semaphore", "transport")

    def __init__(self, http: httpx2.AsyncClient, transport: Transport, max_concurrency: int) -> None:
        self.http = http
        self.transport = transport
        self.semaphore = asyncio.Semaphore(max_concurrency)

    async def aclose(self) -> None:
        try:
            await self.http.aclose()
        finally:
            await self.transport.aclose()


@functools.lru_cache(maxsize=8)
def ssl_context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    """The system trust store, so corporate CAs work (OpenSSL reads SSL_CERT_FILE/SSL_CERT_DIR itself).

    Loading it takes ~100 ms, which every new client paid on its first request; clients now share one
    context per SSL_CERT_* setting (the arguments are only the cache key).
    """
    return ssl.create_default_context()


def open_pool(*, timeout: float, connect_timeout: float, read_timeout: float, max_concurrency: int,
              aiohttp: bool, verify: ssl.SSLContext) -> LoopPool:
    """A pool for the running loop: room for twice ``max_concurrency`` connections (at least 16), so requests
    wait on our semaphore, where limits and Stop act, rather than inside the HTTP library."""
    import httpx2

    max_connections = max(max_concurrency * 2, 16)
    http = httpx2.AsyncClient(
        timeout=httpx2.Timeout(timeout, connect=connect_timeout, read=read_timeout),
        limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max(max_concurrency, 8)),
        headers={"Accept-Encoding": "gzip", "User-Agent": USER_AGENT},
        verify=verify,
        trust_env=True,
    )
    transport: Transport
    if aiohttp:
        from .transport_aiohttp import AiohttpTransport

        transport = AiohttpTransport(max_connections=max_connections, verify=verify)
    else:
        transport = Httpx2Transport(http, connect_timeout, read_timeout)
    return LoopPool(http, transport, max_concurrency)
