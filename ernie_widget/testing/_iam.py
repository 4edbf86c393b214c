"""The simulator's Baidu Cloud IAM: `GET /v1/BCE-BEARER/token`, its bce-auth-v1 signature verified.

The qianfan SDK's mock server mints a token without looking at the signature (docs/ernie-wire.md §9.2). This one
recomputes the signature from the request as it arrived, with the secret key it holds for the access key, so a
client that signs wrongly fails here as it would at Baidu. It is written from the server's side and does not use
`ernie_widget.client.iam`: the two agree only if both follow BCE's published algorithm (docs/ernie-wire.md §11).

Tokens it issues are accepted by the simulator's Qianfan v2 chat route until they expire (or
`expire_tokens()`); then that route answers 401 `invalid_iam_token`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from ._wire import Request

__all__ = ["IAM_TOKEN_PATH", "SIM_ACCESS_KEY", "SIM_SECRET_KEY", "IamAuthority"]

IAM_TOKEN_PATH = "/v1/BCE-BEARER/token"
#: the key pair the simulator knows (32 characters each, like Baidu's); `IamAuthority.keys` can hold more
SIM_ACCESS_KEY = "5a1c0e7b93d24f6e8b1a0c2d4e6f8a0b"
SIM_SECRET_KEY = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
#: Baidu caps a bearer token at 30 days (page vm40x9q45)
MAX_LIFETIME = 2592000
#: when the request asks for no lifetime (Baidu's own default is not documented in what we read)
DEFAULT_LIFETIME = 86400
#: a signature dated further ahead than this is refused too: a client clock running fast
MAX_CLOCK_AHEAD = 900
#: signed when the auth string names no headers (BCE's default set; x-bce-* headers always)
_DEFAULT_SIGNED = frozenset({"host", "content-md5", "content-length", "content-type"})
_ALNUM = string.ascii_letters + string.digits


def _encode(text: str, keep_slash: bool = False) -> str:
    # RFC 3986 unreserved characters stay, everything else is %XX of its UTF-8 bytes (BCE's UriEncode)
    return quote(text.encode("utf-8"), safe="/" if keep_slash else "")


def _iso(t: float) -> str:
    """`2024-11-29T06:09:57.000Z`, the service's format; milliseconds keep sub-second test lifetimes exact."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _expected_signature(req: Request, prefix: str, signed: str, secret_key: str) -> str:
    """What the signature of `req` must be, from the bytes that arrived (path and query still encoded)."""
    target = urlsplit(req.target)
    uri = _encode(unquote(target.path) or "/", keep_slash=True)
    pairs = parse_qsl(target.query, keep_blank_values=True)
    query = "&".join(sorted(f"{_encode(k)}={_encode(v)}" for k, v in pairs if k.lower() != "authorization"))
    names = {n for n in signed.split(";") if n} or _DEFAULT_SIGNED
    lines = sorted(f"{_encode(name)}:{_encode(value.strip())}" for name, value in req.headers.items()
                   if value.strip() and (name in names or name.startswith("x-bce-")))
    canonical = "\n".join([req.method, uri, query, "\n".join(lines)])
    signing_key = hmac.new(secret_key.encode(), prefix.encode(), hashlib.sha256).hexdigest()
    return hmac.new(signing_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


class IamAuthority:
    """Keys, issued tokens and the token route of one simulator (`ErnieSimulator.iam`). Thread-safe: tests
    call it from their thread while the simulator serves on its own."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {SIM_ACCESS_KEY: SIM_SECRET_KEY}  # access key → secret key
        self.lifetime: float | None = None  # when set: every token lives this many seconds, whatever was asked
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # issued token → when it expires (time.time())

    # -- for tests -------------------------------------------------------------------------------------

    def env(self, url: str, access_key: str | None = None, secret_key: str | None = None) -> dict[str, str]:
        """Variables that make the client mint its Qianfan v2 bearer token here (see `ErnieSimulator.env`)."""
        return {
            "ERNIE_PROVIDER": "qianfan",
            "QIANFAN_ACCESS_KEY": access_key or SIM_ACCESS_KEY,
            "QIANFAN_SECRET_KEY": secret_key or SIM_SECRET_KEY,
            "QIANFAN_BASE_URL": url + "/v2",
            "QIANFAN_IAM_BASE_URL": url,
        }

    def issue_token(self, lifetime: float = DEFAULT_LIFETIME) -> tuple[str, float, float]:
        """A new bearer token: (token, created, expires), times in seconds since the epoch."""
        token = "bce-v3/ALTAK-" + "".join(secrets.choice(_ALNUM) for _ in range(21)) + "/" + secrets.token_hex(20)
        created = time.time()
        with self._lock:
            self._tokens[token] = created + lifetime
        return token, created, created + lifetime

    def expire_tokens(self) -> None:
        """Every token issued so far expires now: the chat route answers 401 `invalid_iam_token` to it."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = 0.0

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return len(self._tokens)

    def bearer_state(self, token: str) -> str | None:
        """"valid" or "expired" for a token issued here; None for any other bearer (an API key)."""
        with self._lock:
            expires = self._tokens.get(token)
        if expires is None:
            return None
        return "valid" if time.time() < expires else "expired"

    # -- the route -------------------------------------------------------------------------------------

    def respond(self, req: Request, request_id: str) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Status, JSON body and extra headers for one `GET /v1/BCE-BEARER/token`."""
        if req.method != "GET":
            return self._error(405, "MethodNotAllowed", "The specified method is not allowed.", request_id)
        parts = req.headers.get("authorization", "").split("/")
        if len(parts) != 6 or parts[0] != "bce-auth-v1":
            return self._error(400, "InvalidHTTPAuthHeader", "The HTTP authorization header is invalid.", request_id)
        _, access_key, stamp, expiration, signed, signature = parts
        secret_key = self.keys.get(access_key)
        if secret_key is None:  # 403 as in BCE's common error table
            return self._error(403, "InvalidAccessKeyId",
                               "The Access Key ID you provided does not exist in our records.", request_id)
        try:
            signed_at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
            valid_for = int(expiration)
        except ValueError:
            return self._error(400, "InvalidHTTPAuthHeader", "The HTTP authorization header is invalid.", request_id)
        now = time.time()
        if now > signed_at + valid_for or signed_at > now + MAX_CLOCK_AHEAD:
            return self._error(401, "RequestExpired", f"Request has expired. Timestamp date is {stamp}.", request_id)
        prefix = f"bce-auth-v1/{access_key}/{stamp}/{expiration}"
        if not hmac.compare_digest(_expected_signature(req, prefix, signed, secret_key), signature):
            return self._error(401, "SignatureDoesNotMatch",
                               "Fail to authn user: Signature does not match", request_id)
        try:
            asked = float(req.query.get("expireInSeconds") or DEFAULT_LIFETIME)
        except ValueError:
            return self._error(400, "InvalidHTTPRequest", "expireInSeconds must be a number", request_id)
        lifetime = self.lifetime if self.lifetime is not None else min(max(asked, 1.0), MAX_LIFETIME)
        token, created, expires = self.issue_token(lifetime)
        body = {"userId": access_key[:6] + "user", "token": token, "status": "enable",
                "createTime": _iso(created), "expireTime": _iso(expires)}
        return 200, body, [("X-Bce-Request-Id", request_id)]

    @staticmethod
    def _error(status: int, code: str, message: str, request_id: str) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        # BCE's error shape: the JSON body, and the same code and message in headers (the qianfan SDK reads those)
        headers = [("X-Bce-Request-Id", request_id), ("X-Bce-Error-Code", code),
                   ("X-Bce-Error-Message", f"{code}, cause: {message}")]
        return status, {"requestId": request_id, "code": code, "message": message}, headers
