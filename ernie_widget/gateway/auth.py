"""Who is asking: a per-user API key (``ewk_…``), a JWT bearer token, or nobody (``--no-auth`` on loopback)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .keys import KEY_PREFIX, KeyStore
from .settings import GatewaySettings

__all__ = ["AuthError", "Authenticator", "Principal", "bearer_token"]


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


class Authenticator:
    """Turns a bearer token into a `Principal`, or raises `AuthError`. Never logs or echoes the token."""

    def __init__(self, settings: GatewaySettings, keys: KeyStore | None) -> None:
        self.settings = settings
        self.keys = keys
        self._jwt_key: str | None = settings.jwt_secret or settings.jwt_public_key
        self._jwt_algorithms = ["HS256"] if settings.jwt_secret else ["RS256"]

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
        if self._jwt_key:
            return self._from_jwt(token)
        raise AuthError("API key 无效 / invalid API key", "invalid_api_key")

    def _from_key(self, token: str) -> Principal:
        record = self.keys.lookup(token) if self.keys is not None else None
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

    def _from_jwt(self, token: str) -> Principal:
        import jwt

        assert self._jwt_key is not None
        try:
            claims = jwt.decode(
                token, self._jwt_key, algorithms=self._jwt_algorithms,
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
