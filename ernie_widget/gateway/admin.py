"""The admin HTTP API (``/admin/…``) and each user's own usage (``GET /v1/usage``).

    GET    /admin/keys                     keys (never the keys themselves)
    POST   /admin/keys                     {"name", "rpm"?, "tpm"?, "daily_tokens"?, "models"?, "expires_in"?}
    POST   /admin/keys/{name}/rotate       {"grace"?, "expires_in"?}   a new key; the old one lives `grace` seconds
    DELETE /admin/keys/{name}              revoke every key of the name
    GET    /admin/usage?since=&until=&user=   tokens and requests by UTC day, user and model
    GET    /admin/audit?limit=             admin actions, newest first

The admin API answers only ``Authorization: Bearer <admin token>`` (``$ERNIE_GATEWAY_ADMIN_TOKEN`` or
``--admin-token-file``); without one configured it is off (404), so a gateway never has an admin surface nobody
asked for. Every change is written to the audit log with the caller's address. Bodies are strict: unknown
fields, wrong types and out-of-range values are 400s naming the field.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .admission import authenticate
from .auth import bearer_token
from .bodies import read_json
from .errors import GatewayError, error_response

if TYPE_CHECKING:
    from .keys import KeyStorage
    from .state import Gateway

__all__ = ["admin_routes", "own_usage"]

_ADMIN_BODY_LIMIT = 16 << 10  # an admin request is a few fields
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_Limit = Annotated[int, Field(gt=0, le=10**12)]
_Seconds = Annotated[float, Field(gt=0, le=10 * 365 * 86400)]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(min_length=1, max_length=64)]
    rpm: _Limit | None = None
    tpm: _Limit | None = None
    daily_tokens: _Limit | None = None
    models: Annotated[list[Annotated[str, Field(min_length=1, max_length=128)]], Field(min_length=1,
                                                                                        max_length=64)] | None = None
    expires_in: _Seconds | None = None


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    grace: Annotated[float, Field(ge=0, le=30 * 86400)] = 86400.0
    expires_in: _Seconds | None = None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _admin(request: Request) -> tuple[Gateway, KeyStorage, str]:
    """The gateway, its key store and the actor to audit — or the GatewayError that refuses the caller."""
    gw: Gateway = request.app.state.gateway
    expected = gw.settings.admin_token
    if expected is None:
        raise GatewayError(404, "管理 API 未启用 / the admin API is off: start the gateway with "
                           "$ERNIE_GATEWAY_ADMIN_TOKEN or --admin-token-file", "admin_api_off")
    given = bearer_token(request.headers.get("authorization"))
    # compare digests: equal length, constant time, whatever the caller sent
    if given is None or not hmac.compare_digest(_digest(given), _digest(expected)):
        raise GatewayError(401, "管理令牌无效 / invalid or missing admin token (Authorization: Bearer …)",
                           "invalid_admin_token")
    if gw.keys is None:
        raise GatewayError(409, "此网关没有 key 数据库 / this gateway has no keys database (it runs with --no-auth "
                           "or JWT only)", "no_keys_database")
    host = request.client.host if request.client else "unknown"
    return gw, gw.keys, f"admin-api@{host}"


async def _body(request: Request, model: type[BaseModel]) -> Any:
    raw = await read_json(request, _ADMIN_BODY_LIMIT)
    if raw is None:
        raw = {}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise GatewayError(400, f"参数无效 / invalid {field or 'body'}: {first['msg']}", "invalid_request",
                           param=field) from None


def _handled(handler: Any) -> Any:
    """Turns GatewayError and ValueError (the key store's refusals) into the API's JSON errors."""
    async def route(request: Request) -> Response:
        try:
            return await handler(request)
        except GatewayError as err:
            return error_response(err)
        except ValueError as exc:
            return error_response(GatewayError(400, str(exc), "invalid_request"))
    return route


@_handled
async def list_keys(request: Request) -> Response:
    _, keys, _ = _admin(request)
    records = await asyncio.to_thread(keys.list)
    return JSONResponse({"object": "list", "data": [r.public() for r in records]})


@_handled
async def add_key(request: Request) -> Response:
    _, keys, actor = _admin(request)
    body: NewKey = await _body(request, NewKey)
    key = await asyncio.to_thread(keys.add, body.name, rpm=body.rpm, tpm=body.tpm, daily_tokens=body.daily_tokens,
                                  models=body.models, expires_in=body.expires_in, actor=actor)
    record = await asyncio.to_thread(keys.lookup, key)
    assert record is not None
    return JSONResponse({"key": key, **record.public()}, status_code=201)


@_handled
async def rotate_key(request: Request) -> Response:
    _, keys, actor = _admin(request)
    body: Rotation = await _body(request, Rotation)
    name = request.path_params["name"]
    key = await asyncio.to_thread(keys.rotate, name, grace=body.grace, expires_in=body.expires_in, actor=actor)
    record = await asyncio.to_thread(keys.lookup, key)
    assert record is not None
    return JSONResponse({"key": key, "old_keys_expire": time.time() + body.grace, **record.public()},
                        status_code=201)


@_handled
async def revoke_key(request: Request) -> Response:
    _, keys, actor = _admin(request)
    name = request.path_params["name"]
    if not await asyncio.to_thread(keys.revoke, name, actor=actor):
        raise GatewayError(404, f"没有名为 {name!r} 的有效 key / no active key named {name!r}", "key_not_found")
    return JSONResponse({"name": name, "revoked": True})


def _day_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and not _DAY.fullmatch(value):
        raise GatewayError(400, f"参数无效 / invalid {name}: use YYYY-MM-DD", "invalid_request", param=name)
    return value


@_handled
async def usage(request: Request) -> Response:
    gw, _, _ = _admin(request)
    user = request.query_params.get("user")
    rows = await asyncio.to_thread(gw.usage.report, since=_day_param(request, "since"),
                                   until=_day_param(request, "until"), user=user)
    return JSONResponse({"object": "list", "data": [r.public() for r in rows]})


@_handled
async def audit(request: Request) -> Response:
    _, keys, _ = _admin(request)
    raw = request.query_params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise GatewayError(400, "参数无效 / invalid limit: 1 to 10000", "invalid_request", param="limit")
    entries = await asyncio.to_thread(keys.audit, int(raw))
    return JSONResponse({"object": "list", "data": [e.public() for e in entries]})


@_handled
async def own_usage(request: Request) -> Response:
    """``GET /v1/usage``: the caller's own usage by day and model (any valid user key or JWT)."""
    gw: Gateway = request.app.state.gateway
    principal = authenticate(gw, bearer_token(request.headers.get("authorization")))
    rows = await asyncio.to_thread(gw.usage.report, since=_day_param(request, "since"),
                                   until=_day_param(request, "until"), user=principal.id)
    return JSONResponse({"object": "list", "user": principal.id, "data": [r.public() for r in rows]})


def admin_routes() -> list[Route]:
    return [
        Route("/admin/keys", list_keys, methods=["GET"]),
        Route("/admin/keys", add_key, methods=["POST"]),
        Route("/admin/keys/{name}/rotate", rotate_key, methods=["POST"]),
        Route("/admin/keys/{name}", revoke_key, methods=["DELETE"]),
        Route("/admin/usage", usage, methods=["GET"]),
        Route("/admin/audit", audit, methods=["GET"]),
        Route("/v1/usage", own_usage, methods=["GET"]),
    ]
