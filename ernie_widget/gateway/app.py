"""`create_app`: the gateway's Starlette app — routes, shared state, start-up and shut-down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from ..client import AsyncErnie
from .admin import admin_routes
from .admission import authenticate
from .auth import bearer_token
from .errors import GatewayError, error_response
from .http_chat import chat_completions
from .keys import KeyStorage
from .metrics import CONTENT_TYPE_LATEST
from .settings import GatewaySettings
from .state import Gateway, upstream_client
from .ws import websocket_endpoint

__all__ = ["Gateway", "create_app", "upstream_client"]


async def healthz(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    if gw.draining:  # load balancers stop sending here at once; answers in flight still finish
        return JSONResponse({"status": "draining"}, status_code=503, headers={"Retry-After": "1"})
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
               keys: KeyStorage | None = None) -> Starlette:
    """The gateway as an ASGI app. ``client`` overrides the upstream client built from ``settings``."""
    gw = Gateway(settings or GatewaySettings(), client, keys)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.refresh_jwks()  # the first JWT must not wait for the sweeper
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
        *admin_routes(),
    ], lifespan=lifespan)
    app.state.gateway = gw
    return app
