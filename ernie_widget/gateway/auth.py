"""Who is asking: a per-user API key (``ewk_…``), a JWT bearer token, or nobody (``--no-auth`` on loopback)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from .keys import KEY_PREFIX, KeyStorage, StoreUnavailable
from .settings import GatewaySettings

__all__ = ["AuthError", "Authenticator", "JwksKeys", "Principal", "bearer_token"]

#: signature algorithms a JWKS key may use: asymmetric only (a symmetric "oct" key in a published set is ignored,
#: or anyone who read the set could sign tokens)
_JWKS_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                              "EdDSA"})
_JWKS_MAX_BYTES = 1 << 20
#: an unknown key id asks for a fetch, but not more often than this: tokens with made-up key ids must not make
#: the gateway hammer the identity provider
_JWKS_MIN_INTERVAL = 10.0


@dataclass(frozen=True)
class Principal:
    """An authenticated user and the limits that apply to them (None = unlimited)."""

    user: str
    via: str  # "key" | "jwt" | "none"
    rpm: int | None = None
    tpm: int | None = None
    daily_tokens: int | None = None
    models: tuple[str, ...] | None = None  # the key's model allow-list (None: any the gateway allows)

    @property
    def id(self) -> str:
        """The identity limits, budgets and resumable answers belong to: namespaced by how the user
        authenticated, so a JWT whose ``sub`` is ``alice`` is not the key user ``alice`` (``jwt:alice``, ``key:alice``)."""
        return f"{self.via}:{self.user}"


class AuthError(Exception):
    """Authentication failed; ``code`` is the OpenAI-style error code sent back."""

    def __init__(self, message: str, code: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class JwksKeys:
    """The signing keys published at a JWKS URL, by key id.

    Fetched off the event loop (`Gateway.sweep_forever` calls `fetch` in a thread when `due`): at start, every
    ``refresh`` seconds, and soon after a token names a key id the set lacks (at most every 10 s) — so an
    identity provider's key rotation takes effect without a restart, and the request path never waits for the
    network. A failed fetch keeps the keys it had."""

    def __init__(self, url: str, refresh: float = 300.0) -> None:
        self.url = url
        self.refresh = refresh
        self._keys: dict[str, Any] = {}
        self._fetched = 0.0  # monotonic time of the last attempt (0: never)
        self._wanted = False
        self._lock = threading.Lock()
        self.min_interval = _JWKS_MIN_INTERVAL

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if not self._fetched:
            return True
        return now - self._fetched >= self.refresh or (self._wanted and now - self._fetched >= self.min_interval)

    def fetch(self) -> None:
        """Fetch the set (blocking; call it in a thread). Raises on failure, keeping the previous keys."""
        import jwt

        self._fetched = time.monotonic()
        self._wanted = False
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read(_JWKS_MAX_BYTES + 1)
        if len(raw) > _JWKS_MAX_BYTES:
            raise ValueError("the JWKS is larger than 1 MiB")
        keys: dict[str, Any] = {}
        for entry in json.loads(raw).get("keys", []):
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError):
                continue  # a key of a kind this gateway cannot use (or will not: symmetric)
            if key.key_id and key.algorithm_name in _JWKS_ALGORITHMS:
                keys[key.key_id] = key
        with self._lock:
            self._keys = keys

    def key(self, kid: str) -> Any | None:
        with self._lock:
            found = self._keys.get(kid)
        if found is None:
            self._wanted = True  # the sweeper fetches again soon (rotation), but not on every such token
        return found


class Authenticator:
    """Turns a bearer token into a `Principal`, or raises `AuthError`. Never logs or echoes the token."""

    def __init__(self, settings: GatewaySettings, keys: KeyStorage | None) -> None:
        self.settings = settings
        self.keys = keys
        self._jwt_key: str | None = settings.jwt_secret or settings.jwt_public_key
        self._jwt_algorithms = ["HS256"] if settings.jwt_secret else ["RS256"]
        self.jwks = JwksKeys(settings.jwks_url, settings.jwks_refresh) if settings.jwks_url else None

    @property
    def required(self) -> bool:
        return not self.settings.no_auth

    def _defaults(self, user: str, via: str, claims: dict[str, Any] | None = None) -> Principal:
        s = self.settings
        claims = claims or {}
        return Principal(
            user, via,
            rpm=_int_or(claims.get("rpm"), s.default_rpm),
            tpm=_int_or(claims.get("tpm"), s.default_tpm),
            daily_tokens=_int_or(claims.get("daily_tokens"), s.default_daily_tokens),
        )

    def authenticate(self, token: str | None) -> Principal:
        if not self.required:
            return self._defaults("anonymous", "none")
        if not token:
            raise AuthError("缺少 API key / missing API key: send 'Authorization: Bearer ewk_…'", "missing_api_key")
        if token.startswith(KEY_PREFIX):
            return self._from_key(token)
        if self._jwt_key or self.jwks is not None:
            return self._from_jwt(token)
        raise AuthError("API key 无效 / invalid API key", "invalid_api_key")

    def _from_key(self, token: str) -> Principal:
        try:
            record = self.keys.lookup(token) if self.keys is not None else None
        except StoreUnavailable:  # the replicas' database is away: a retryable 503, not a 500
            raise AuthError("密钥数据库暂不可用 / the keys database is unavailable; retry shortly", "keys_unavailable",
                            503) from None
        if record is None:
            raise AuthError("API key 无效 / invalid API key", "invalid_api_key")
        if record.revoked is not None:
            raise AuthError("API key 已吊销 / this API key was revoked", "revoked_api_key")
        if record.expired:
            raise AuthError("API key 已过期 / this API key has expired: ask the gateway's admin for a new one "
                            "(ernie-widget serve keys rotate NAME)", "expired_api_key")
        s = self.settings
        return Principal(
            record.name, "key",
            rpm=record.rpm if record.rpm is not None else s.default_rpm,
            tpm=record.tpm if record.tpm is not None else s.default_tpm,
            daily_tokens=record.daily_tokens if record.daily_tokens is not None else s.default_daily_tokens,
            models=record.models,
        )

    def _signing_key(self, token: str) -> tuple[Any, list[str]]:
        """The key and algorithms to verify ``token`` with: the configured secret or public key, or the JWKS
        key its header names."""
        import jwt

        if self.jwks is None:
            assert self._jwt_key is not None
            return self._jwt_key, self._jwt_algorithms
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise AuthError("令牌无效 / invalid token (malformed header)", "invalid_token") from None
        if not isinstance(kid, str) or not kid:
            raise AuthError("令牌无效 / invalid token (no key id, kid)", "invalid_token")
        key = self.jwks.key(kid)
        if key is None:
            raise AuthError("未知的签名密钥 / the token's signing key is not (yet) in the gateway's JWKS; it is "
                            "fetched again within seconds — retry shortly", "unknown_key_id")
        return key.key, [key.algorithm_name]

    def _from_jwt(self, token: str) -> Principal:
        import jwt

        key, algorithms = self._signing_key(token)
        try:
            claims = jwt.decode(
                token, key, algorithms=algorithms,
                audience=self.settings.jwt_audience, issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "sub"]}, leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("令牌已过期 / the token has expired", "token_expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"令牌无效 / invalid token ({type(exc).__name__})", "invalid_token") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthError("令牌无效 / invalid token (no subject)", "invalid_token")
        return self._defaults(sub, "jwt", claims)


def _int_or(value: Any, default: int | None) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default
