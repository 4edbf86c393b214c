"""Baidu Cloud IAM: the BCE v1 request signature, and IAM AK/SK → a Qianfan v2 bearer token.

Baidu's qianfan SDK users often hold IAM credentials (``QIANFAN_ACCESS_KEY`` / ``QIANFAN_SECRET_KEY``, from
console → 安全认证 → Access Key) rather than a v2 API key. The v2 chat API takes a bearer token minted from
them: ``GET {iam}/v1/BCE-BEARER/token?expireInSeconds=N`` signed with ``bce-auth-v1``, answering
``{"token": "bce-v3/ALTAK-…", "createTime": …, "expireTime": …}``. Facts and sources: docs/ernie-wire.md §11.

The signer follows BCE's published algorithm (生成认证字符串) and is checked against Baidu's own
``baidubce.auth.bce_v1_signer.sign`` in tests/test_iam.py; nothing here comes from the SDK's code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from .classify import error_from_body, error_in
from .defaults import DEFAULT_IAM_BASE_URL
from .errors import APIConnectionError, AuthenticationError, ErnieError, RateLimitError, ServerError
from .redact import redact, register_secret

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "BEARER_TOKEN_PATH",
    "DEFAULT_IAM_BASE_URL",
    "BearerTokenSource",
    "canonical_headers",
    "canonical_query",
    "canonical_time",
    "sign",
    "uri_encode",
]

BEARER_TOKEN_PATH = "/v1/BCE-BEARER/token"
#: seconds of life asked for a bearer token: the qianfan SDK's default (12 h; Baidu caps it at 30 days)
TOKEN_LIFETIME = 43200
#: seconds a signed token request stays valid: the SDK's value. Short on purpose: anyone who captured the
#: signed request could replay it to mint tokens until it expires.
SIGNATURE_LIFETIME = 300
#: a token is replaced this long before it expires (at most; a tenth of a short token's life), so a
#: request never sets out with a token that dies on the way
REFRESH_MARGIN = 300.0
#: what BCE signs when the caller names no headers (the spec's default set; x-bce-* headers come on top)
DEFAULT_SIGNED_HEADERS = frozenset({"host", "content-md5", "content-length", "content-type"})


def uri_encode(value: str, *, keep_slash: bool = False) -> str:
    """BCE's UriEncode: UTF-8, then every byte but ``A-Z a-z 0-9 - . _ ~`` as ``%XX`` (a space is ``%20``,
    never ``+``). ``quote`` leaves exactly those unreserved characters alone when ``safe`` is empty."""
    return quote(value.encode("utf-8"), safe="/" if keep_slash else "")


def canonical_time(timestamp: float) -> str:
    """``2024-11-28T06:09:57Z``: UTC, whole seconds, as the auth string and ``x-bce-date`` carry it."""
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_query(params: Mapping[str, str]) -> str:
    """``k=v`` pairs, both encoded, sorted, joined by ``&``; a key without value is ``k=``. The spec drops an
    ``authorization`` parameter (a presigned URL carries the auth string there)."""
    return "&".join(sorted(f"{uri_encode(k)}={uri_encode(str(v))}" for k, v in params.items()
                           if k.lower() != "authorization"))


def canonical_headers(headers: Mapping[str, str], signed: Collection[str] | None) -> str:
    """``name:value`` lines (name lower-cased, value trimmed, both encoded), sorted, joined by newlines.

    Signed are the named headers (the default set when none are named) and every ``x-bce-*`` header, as
    Baidu's signer does; a header whose value is empty is left out."""
    wanted = DEFAULT_SIGNED_HEADERS if not signed else {h.strip().lower() for h in signed}
    lines = []
    for name, value in headers.items():
        key = name.strip().lower()
        text = str(value).strip()
        if text and (key in wanted or key.startswith("x-bce-")):
            lines.append(f"{uri_encode(key)}:{uri_encode(text)}")
    return "\n".join(sorted(lines))


def _hmac_hex(key: str, message: str) -> str:
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(access_key: str, secret_key: str, method: str, path: str, params: Mapping[str, str],
         headers: Mapping[str, str], *, timestamp: float, expiration: int = SIGNATURE_LIFETIME,
         signed_headers: Collection[str] | None = None) -> str:
    """The ``Authorization`` value for one request:
    ``bce-auth-v1/{ak}/{timestamp}/{expiration}/{signedHeaders}/{signature}``.

    ``path`` is the request path as written, before encoding (it is encoded here, slashes kept). The signing
    key is HMAC-SHA256(SK, auth-string prefix) in hex, and the signature HMAC-SHA256(signing key, canonical
    request) in hex, the canonical request being method, URI, query and headers on four lines.
    """
    prefix = f"bce-auth-v1/{access_key}/{canonical_time(timestamp)}/{int(expiration)}"
    signing_key = _hmac_hex(secret_key, prefix)
    request = "\n".join([method.upper(), uri_encode(path if path.startswith("/") else "/" + path, keep_slash=True),
                         canonical_query(params), canonical_headers(headers, signed_headers)])
    names = ";".join(sorted({h.strip().lower() for h in signed_headers})) if signed_headers else ""
    return f"{prefix}/{names}/{_hmac_hex(signing_key, request)}"


def _parse_time(value: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 UTC time (``2024-11-29T06:09:57.000Z``), else None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:  # the service says UTC ("utc时区"); a naive value is read as UTC too
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _lifetime(body: Mapping[str, Any], asked: float) -> float:
    """How long a fresh token lives, in seconds. From the service's own two times when both are there, so a
    wrong local clock does not matter; else expireTime against our clock; else what was asked for."""
    created, expires = _parse_time(body.get("createTime")), _parse_time(body.get("expireTime"))
    if expires is not None:
        return max(0.0, expires - (created if created is not None else time.time()))
    return asked


#: what to check first for each of BCE's authentication error codes (docs/ernie-wire.md §11): 中文, English
_HINTS = {
    "SignatureDoesNotMatch": ("请检查 QIANFAN_SECRET_KEY", "check QIANFAN_SECRET_KEY"),
    "InvalidAccessKeyId": ("请检查 QIANFAN_ACCESS_KEY", "check QIANFAN_ACCESS_KEY"),
    # what IAM is seen to say for an unknown AK ("NotFound, cause: Could not find credential.")
    "NotFound": ("请检查 QIANFAN_ACCESS_KEY", "check QIANFAN_ACCESS_KEY"),
    "RequestExpired": ("请校准本机时间", "check this computer's clock: the signature carries its time"),
    "AccessDenied": ("该密钥无权创建 BearerToken", "this key pair may not create bearer tokens"),
}
_HINT = ("请检查 QIANFAN_ACCESS_KEY 与 QIANFAN_SECRET_KEY", "check QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY")


class BearerTokenSource:
    """A Qianfan v2 bearer token minted from IAM AK/SK: fetched once, shared by every request of a client,
    and replaced shortly before it expires or when the service calls it invalid (``invalid_iam_token``).

    Holds the secret key: no repr of it shows the keys or the token (the default object repr).
    """

    def __init__(self, access_key: str, secret_key: str, iam_base_url: str = DEFAULT_IAM_BASE_URL, *,
                 lifetime: int = TOKEN_LIFETIME) -> None:
        register_secret(secret_key)
        self._access_key = access_key
        self._secret_key = secret_key
        self._url = iam_base_url.rstrip("/") + BEARER_TOKEN_PATH
        self._lifetime = lifetime
        self._token: str | None = None
        self._refresh_at = 0.0  # time.monotonic() after which the token is replaced before use
        # an asyncio.Lock belongs to one loop; the sync client and asyncio.run() callers bring their own
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @property
    def token(self) -> str | None:
        """The current token (None before the first fetch)."""
        return self._token

    async def get(self, http: httpx2.AsyncClient, *, force: bool = False) -> str:
        """A token fit to send. ``force``: the service refused the current one; fetch another unless a
        concurrent request already did."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        stale = self._token
        async with self._lock:
            fresh = self._token is not None and time.monotonic() < self._refresh_at
            if fresh and not (force and self._token == stale):
                assert self._token is not None
                return self._token
            token, lifetime = await self._fetch(http)
            register_secret(token)
            self._token = token
            self._refresh_at = time.monotonic() + lifetime - min(REFRESH_MARGIN, lifetime / 10)
            return token

    async def _fetch(self, http: httpx2.AsyncClient) -> tuple[str, float]:
        import httpx2 as _httpx2

        host = urlsplit(self._url).netloc.rsplit("@", 1)[-1]
        now = time.time()
        params = {"expireInSeconds": str(self._lifetime)}
        # the Host header is sent as signed, not left to the HTTP library, so the two cannot differ
        headers = {"Host": host, "x-bce-date": canonical_time(now)}
        headers["Authorization"] = sign(self._access_key, self._secret_key, "GET", BEARER_TOKEN_PATH, params,
                                        headers, timestamp=now, signed_headers=("host", "x-bce-date"))
        try:
            response = await http.get(self._url, params=params, headers=headers)
        except _httpx2.HTTPError as exc:
            raise APIConnectionError(
                f"无法连接 IAM 获取令牌 / could not reach the IAM token endpoint {host}: {type(exc).__name__}"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        status = response.status_code
        if status == 200 and isinstance(body, dict) and isinstance(body.get("token"), str) and body["token"] \
                and body.get("status", "enable") == "enable":
            return body["token"], _lifetime(body, self._lifetime)
        raise self._refusal(status, body, response.headers.get("x-bce-request-id"))

    def _refusal(self, status: int, body: Any, request_id: str | None) -> ErnieError:
        err = error_in(body) if isinstance(body, dict) else None
        code = str(err.get("code") or "") if isinstance(err, Mapping) else ""
        message = str(err.get("message") or "") if isinstance(err, Mapping) else ""
        if status == 200 and isinstance(body, dict) and body.get("status") not in (None, "enable"):
            code, message = "TokenDisabled", f"the token came back with status {body.get('status')!r}"
        elif status == 200 and not err:
            message = "the answer held no token"
        # the service's message may quote what it was sent: keep it, without the keys
        detail = redact(f"{code}: {message}" if code and message else code or message or f"HTTP {status}",
                        (self._access_key, self._secret_key))
        kw: dict[str, Any] = {"status_code": status, "code": code or None, "request_id": request_id}
        if status == 429 or status >= 500:
            typed = error_from_body(err or {"message": detail}, status=status)
            if isinstance(typed, RateLimitError | ServerError):
                return type(typed)(f"IAM 令牌服务暂不可用 / the IAM token service is unavailable ({detail})",
                                   retry_after=typed.retry_after, **kw)
        zh, en = _HINTS.get(code, _HINT)
        return AuthenticationError(f"IAM 拒绝了 AK/SK，{zh} / Baidu IAM refused the QIANFAN_ACCESS_KEY/"
                                   f"QIANFAN_SECRET_KEY pair: {en} ({detail})", **kw)
