"""`create_app`: the gateway's Starlette app — routes, shared state, start-up and shut-down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from ..client import AsyncErnie
from .accesslog import AccessLog
from .auth import Authenticator, Principal
from .errors import GatewayError
from .filters import ContentFilter
from .http_chat import authenticate, bearer_token, chat_completions, error_response
from .keys import KeyStore
from .metrics import CONTENT_TYPE_LATEST, GatewayMetrics
from .quotas import Quotas
from .replay import ReplayStore
from .settings import GatewaySettings
from .ws import websocket_endpoint

__all__ = ["Gateway", "create_app", "upstream_client"]

logger = logging.getLogger("ernie_widget.gateway")


def upstream_client(settings: GatewaySettings, *, max_retries: int = 2) -> AsyncErnie:
    """The client a gateway with ``settings`` sends upstream with."""
    from ..client.aiohttp_sender import use_aiohttp
    from ..client.providers import HTTPProvider

    client = AsyncErnie(
        settings.provider, model=settings.model, base_url=settings.base_url, api_key=settings.api_key,
        max_concurrency=settings.max_concurrency, rpm=settings.upstream_rpm, tpm=settings.upstream_tpm,
        rate_limit_backend=settings.redis_url, max_retries=max_retries,
    )
    if not use_aiohttp(settings.upstream_transport, "gateway") or not isinstance(client._provider, HTTPProvider):
        return client
    # a gateway spends most of its CPU reading upstream streams; aiohttp's C parser hands over whatever
    # arrived in one piece, where httpx2 yields every chunked-encoding frame on its own
    return client.with_own_pool(settings.max_concurrency, aiohttp=True)


class Gateway:
    """Everything the routes share: the upstream client, auth, quotas, metrics, filter, logs, replay store."""

    def __init__(self, settings: GatewaySettings, client: AsyncErnie | None = None,
                 keys: KeyStore | None = None) -> None:
        settings.validate()
        self.settings = settings
        self.client = client or upstream_client(settings)
        if keys is None and settings.keys_path is not None and not settings.no_auth:
            keys = KeyStore(settings.keys_path)
        if not settings.no_auth and keys is None and not (settings.jwt_secret or settings.jwt_public_key):
            raise ValueError("no way to authenticate: give a keys database, --jwt-secret/--jwt-public-key, "
                             "or --no-auth on 127.0.0.1")
        self.keys = keys
        self.auth = Authenticator(settings, keys)
        self.quotas = Quotas(settings.redis_url)
        self.metrics = GatewayMetrics()
        self.filter = ContentFilter.load(settings.content_filter) if settings.content_filter else None
        self.access = AccessLog(settings.log_prompts)
        self.replay = ReplayStore(settings.replay_bytes, settings.replay_ttl, settings.resume_grace)

    def reject(self, transport: str, err: GatewayError, started: float, principal: Principal | None) -> None:
        """Count and log a request refused before it reached upstream."""
        self.metrics.errors.labels(err.code).inc()
        self.access.write(transport=transport, user=principal.user if principal else None, status=err.status,
                          error=err.code, duration_ms=round((time.monotonic() - started) * 1000, 1))

    def log_internal(self, msg: str, *args: Any) -> None:
        logger.warning(msg, *args)

    async def sweep_forever(self) -> None:
        interval = max(0.05, min(1.0, self.settings.resume_grace / 4, self.settings.replay_ttl / 4))
        while True:
            await asyncio.sleep(interval)
            self.replay.sweep()

    async def aclose(self) -> None:
        self.replay.cancel_all()
        await self.client.aclose()
        self.quotas.close()
        if self.keys is not None:
            self.keys.close()


async def healthz(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    return JSONResponse({"status": "ok", "provider": gw.client.provider, "model": gw.client.model})


async def metrics(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    return Response(gw.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def models(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    try:
        authenticate(gw, bearer_token(request.headers.get("authorization")))
    except GatewayError as err:
        return error_response(err)
    names = gw.settings.models or (gw.client.model or "default",)
    return JSONResponse({"object": "list", "data": [
        {"id": n, "object": "model", "created": 0, "owned_by": "ernie-widget"} for n in names]})


def create_app(settings: GatewaySettings | None = None, *, client: AsyncErnie | None = None,
               keys: KeyStore | None = None) -> Starlette:
    """The gateway as an ASGI app. ``client`` overrides the upstream client built from ``settings``."""
    gw = Gateway(settings or GatewaySettings(), client, keys)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(gw.sweep_forever())
        try:
            yield
        finally:
            sweeper.cancel()
            await gw.aclose()

    app = Starlette(routes=[
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        WebSocketRoute("/v1/ws", websocket_endpoint),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ], lifespan=lifespan)
    app.state.gateway = gw
    return app
