"""`AiohttpTransport`: chat requests over aiohttp, the HTTP stack for many small requests at once (batch rows).

httpx2 spends ~1.5 ms of CPU per request here (its pool rescans every connection on each request, and its
anyio layer wraps every socket call); aiohttp, with its C parser and simpler pool, spends about a quarter
of that. A wide batch is bound by exactly that CPU: at 32 rows in flight it separates ~87 % of the ideal
rate from ~92 %.

The transport is deliberately small: the lifecycle still builds the request and the reader reads the answer,
and failures are raised as the httpx2 exceptions the default transport would raise, so retries, error
messages and secret redaction behave the same on both. Authentication requests (v1's OAuth token) stay on httpx2.
Proxies come from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), as with httpx2's ``trust_env``,
looked up once per URL: aiohttp's own ``trust_env`` looks them up in a worker thread on every request,
which costs more than the request.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

import httpx2

from .defaults import USER_AGENT

if TYPE_CHECKING:
    from .providers.base import HTTPRequest

__all__ = ["AiohttpResponse", "AiohttpTransport"]

def _httpx_error(exc: BaseException, *, reading: bool) -> httpx2.TransportError:
    """The httpx2 exception the default stack raises for the same failure (no request: its repr has the URL)."""
    import aiohttp

    message = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return httpx2.ReadTimeout(message) if reading else httpx2.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx2.ConnectError(message)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return httpx2.RemoteProtocolError(message)
    return httpx2.ReadError(message) if reading else httpx2.ConnectError(message)


class AiohttpResponse:
    """The part of `httpx2.Response` the client reads: status, headers, body bytes, close."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self.status_code: int = response.status
        self.headers: Mapping[str, str] = response.headers  # case-insensitive, like httpx2's

    async def aiter_bytes(self) -> AsyncGenerator[bytes, None]:
        import aiohttp

        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, reading=True) from None

    async def aclose(self) -> None:
        # a body left unread (Stop, cancellation, an oversized answer) closes its connection, so the server
        # sees the client leave; only a finished body returns its connection to the pool
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpTransport:
    """One aiohttp session per event loop, created on first use on the loop that uses it."""

    def __init__(self, *, max_connections: int, verify: ssl.SSLContext | None = None) -> None:
        self._max_connections = max_connections
        self._ssl: ssl.SSLContext | bool = verify if verify is not None else True
        self._session: Any = None
        self._proxies: dict[str, str | None] = {}

    def _proxy_for(self, url: str) -> str | None:
        try:
            return self._proxies[url]  # a batch sends every row to the same URL
        except KeyError:
            pass
        from urllib.parse import urlsplit
        from urllib.request import getproxies_environment, proxy_bypass_environment  # type: ignore[attr-defined]

        parts = urlsplit(url)
        proxies = getproxies_environment()
        bypass = proxy_bypass_environment(parts.hostname or "", proxies)
        if len(self._proxies) > 64:  # v1 URLs differ by model: a small bound keeps this from growing
            self._proxies.clear()
        proxy = self._proxies[url] = None if bypass else proxies.get(parts.scheme)
        return proxy

    async def send(self, req: HTTPRequest, *, connect_timeout: float, read_timeout: float) -> AiohttpResponse:
        import aiohttp

        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": USER_AGENT},
            )
        timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout)
        try:
            response = await self._session.request(req.method, req.url, json=req.json, headers=dict(req.headers),
                                                   params=req.params or None, timeout=timeout,
                                                   proxy=self._proxy_for(req.url), allow_redirects=False)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, reading=False) from None
        return AiohttpResponse(response)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
