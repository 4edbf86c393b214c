"""How a chat request reaches the network: a small interface with an httpx2 and an aiohttp implementation.

The request lifecycle (lifecycle.py) and the response reader (reader.py) see only `Transport` and
`TransportResponse`, so they never branch on the HTTP library. Both implementations raise httpx2's exception
types for the same failures (a refused connection is `httpx2.ConnectError` on either), so retries, error
messages and secret redaction behave the same whichever carries the request.

httpx2 is the default: the interactive streams (widget, magics, `Ernie.stream`). aiohttp (transport_aiohttp.py)
serves many small requests at once — batch rows and a gateway's upstream reads — at about a quarter of
httpx2's CPU per request.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import httpx2

    from .providers.base import HTTPRequest

__all__ = ["TRANSPORTS", "Httpx2Transport", "Transport", "TransportName", "TransportResponse", "aiohttp_available",
           "resolve_transport", "use_aiohttp"]

TransportName = Literal["auto", "httpx2", "aiohttp"]
TRANSPORTS: tuple[str, ...] = ("auto", "httpx2", "aiohttp")


class TransportResponse(Protocol):
    """What the reader needs of a response: status, headers, the body as bytes, and closing it."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def aiter_bytes(self) -> AsyncGenerator[bytes, None]: ...

    async def aclose(self) -> None: ...


class Transport(Protocol):
    """Sends one chat request and returns as soon as the response head has arrived."""

    async def send(self, req: HTTPRequest, *, connect_timeout: float, read_timeout: float) -> TransportResponse:
        """``read_timeout`` bounds each read of the body (and, unstreamed, the wait for the whole answer)."""
        ...

    async def aclose(self) -> None: ...


class Httpx2Transport:
    """Chat requests on the pool's httpx2 client (which also serves authentication requests)."""

    __slots__ = ("_default_connect", "_default_read", "_http")

    def __init__(self, http: httpx2.AsyncClient, default_connect: float, default_read: float) -> None:
        self._http = http
        # the client's own timeouts: most requests need no others
        self._default_connect = default_connect
        self._default_read = default_read

    async def send(self, req: HTTPRequest, *, connect_timeout: float, read_timeout: float) -> TransportResponse:
        import httpx2

        http = self._http
        timeout: httpx2.Timeout | httpx2._client.UseClientDefault = httpx2.USE_CLIENT_DEFAULT
        if read_timeout != self._default_read or connect_timeout != self._default_connect:
            timeout = httpx2.Timeout(read_timeout, connect=connect_timeout)
        # no local holds the httpx request: its repr shows the URL, which carries v1's access_token, and
        # tracebacks that print locals (IPython's verbose mode, error trackers) would show it
        return await http.send(http.build_request(req.method, req.url, json=req.json, headers=req.headers,
                                                  params=req.params or None, timeout=timeout),
                               stream=True)

    async def aclose(self) -> None:
        """Nothing of its own: the pool closes the httpx2 client."""


def aiohttp_available() -> bool:
    """True when aiohttp can be imported (the ``batch`` and ``gateway`` extras install it)."""
    return importlib.util.find_spec("aiohttp") is not None


def resolve_transport(transport: str, extra: str) -> Literal["httpx2", "aiohttp"]:
    """What ``transport`` ("auto", "httpx2" or "aiohttp") means here: "auto" is aiohttp when installed.
    A bad name, or "aiohttp" without aiohttp (``extra`` names the install that brings it), is an error."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be 'auto', 'httpx2' or 'aiohttp', not {transport!r}")
    available = aiohttp_available()
    if transport == "aiohttp" and not available:
        raise ImportError(f"transport 'aiohttp' needs aiohttp: pip install 'ernie-widget[{extra}]'")
    return "aiohttp" if transport == "aiohttp" or (transport == "auto" and available) else "httpx2"


def use_aiohttp(transport: str, extra: str) -> bool:
    """Whether ``transport`` resolves to aiohttp (see `resolve_transport`)."""
    return resolve_transport(transport, extra) == "aiohttp"
