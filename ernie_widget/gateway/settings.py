"""`GatewaySettings`: everything `create_app` needs, filled from the command line or by hand in tests."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["LOOPBACK_HOSTS", "GatewaySettings", "UpstreamSpec", "default_keys_path"]

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def default_keys_path() -> Path:
    """`$ERNIE_GATEWAY_KEYS`, else `$XDG_DATA_HOME/ernie-widget/gateway-keys.sqlite3`."""
    env = os.environ.get("ERNIE_GATEWAY_KEYS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ernie-widget" / "gateway-keys.sqlite3"


def _check_jwks_url(url: str) -> None:
    """https, or http only to this machine (a JWKS fetched in clear text from elsewhere could be swapped)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return
    raise ValueError(f"--jwks-url must be an https:// URL (http only on 127.0.0.1): {url!r}")


_UPSTREAM_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_PROVIDERS = ("qianfan", "qianfan-v1", "aistudio", "openai")


@dataclass(frozen=True)
class UpstreamSpec:
    """One more upstream besides the default one: which models it serves (fnmatch patterns, ``*`` for all),
    where it is, and the environment variable holding its key (never the key itself: argv is visible in ps)."""

    name: str
    provider: str
    base_url: str
    models: tuple[str, ...] = ("*",)
    key_env: str | None = None
    model: str | None = None  # its default model, for requests that name none

    @classmethod
    def parse(cls, text: str) -> UpstreamSpec:
        """``NAME=PROVIDER,BASE_URL[,models=PAT|PAT][,model=NAME][,key-env=VAR]`` (the ``--upstream`` flag)."""
        name, sep, rest = text.partition("=")
        parts = [p.strip() for p in rest.split(",")] if sep else []
        if len(parts) < 2:
            raise ValueError(f"--upstream {text!r}: expected NAME=PROVIDER,BASE_URL[,models=a*|b][,model=M]"
                             "[,key-env=VAR]")
        options: dict[str, str] = {}
        for part in parts[2:]:
            key, eq, value = part.partition("=")
            if not eq or key not in ("models", "model", "key-env"):
                raise ValueError(f"--upstream {text!r}: unknown option {part!r} (models=, model=, key-env=)")
            options[key] = value
        models = tuple(m for m in options.get("models", "*").split("|") if m)
        spec = cls(name.strip(), parts[0], parts[1], models or ("*",), options.get("key-env") or None,
                   options.get("model") or None)
        spec.validate()
        return spec

    def validate(self) -> None:
        if not _UPSTREAM_NAME.fullmatch(self.name) or self.name == "default":
            raise ValueError(f"upstream name {self.name!r}: lower-case letters, digits, - and _ (not 'default')")
        if self.provider not in _PROVIDERS:
            raise ValueError(f"upstream {self.name}: provider must be one of {', '.join(_PROVIDERS)}")
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", self.base_url):
            raise ValueError(f"upstream {self.name}: base URL must be http(s)://host[/path], not {self.base_url!r}")
        if self.key_env is not None and not os.environ.get(self.key_env):
            raise ValueError(f"upstream {self.name}: ${self.key_env} is not set (key-env names the variable "
                             "that holds its key)")

    def serves(self, model: str | None) -> bool:
        """Whether a request for ``model`` may go here (one naming no model: only an upstream serving ``*``)."""
        if model is None:
            return "*" in self.models
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


@dataclass
class GatewaySettings:
    """How the gateway authenticates, limits, streams and logs. Defaults are the safe ones."""

    host: str = "127.0.0.1"
    port: int = 8787
    # -- the upstream ERNIE service (credentials come from the usual environment variables)
    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    models: tuple[str, ...] = ()  # allow-list of model names clients may ask for; empty = any
    upstream_rpm: int | None = None  # the gateway's own key: shared by replicas through --redis
    upstream_tpm: int | None = None
    max_concurrency: int = 64
    # "auto": aiohttp when installed (the gateway extra brings it), which reads an upstream stream for a
    # third of httpx2's CPU per chunk; "httpx2" keeps the client's default stack
    upstream_transport: Literal["auto", "httpx2", "aiohttp"] = "auto"
    # more upstreams (e.g. a self-hosted FastDeploy serving ERNIE-4.5 weights), tried in this order for the models
    # they serve, the default upstream last; on a connection error or 5xx before any content, the next one answers
    upstreams: tuple[UpstreamSpec, ...] = ()
    upstream_retries: int = 2  # retries on one upstream (connection errors, 429, 5xx) before the next one
    # -- auth
    no_auth: bool = False
    keys_path: Path | None = None
    # replicas: keys, audit and usage in this PostgreSQL database instead of the SQLite file (see store_pg)
    database_url: str | None = field(default=None, repr=False)
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_public_key: str | None = None  # PEM text
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    # a JWKS URL (the identity provider's published keys): keys rotate without a restart (see auth.JwksKeys)
    jwks_url: str | None = None
    jwks_refresh: float = 300.0  # seconds between JWKS fetches (an unknown key id also asks for one, at most every 10 s)
    # the admin API (/admin/…) answers only this bearer token; None turns it off (404)
    admin_token: str | None = field(default=None, repr=False)
    # -- limits applied to users without their own (JWT users, keys added without limits, --no-auth)
    default_rpm: int | None = None
    default_tpm: int | None = None
    default_daily_tokens: int | None = None
    redis_url: str | None = field(default=None, repr=False)
    # -- streaming discipline
    heartbeat: float = 15.0  # seconds between SSE comment lines
    stream_buffer_bytes: int = 1 << 20  # per connection: a consumer further behind is disconnected
    send_timeout: float = 30.0  # one write blocked longer than this ends the connection
    ws_first_message_timeout: float = 10.0
    ws_max_inflight: int = 8  # answers one WebSocket connection may have running
    replay_bytes: int = 1 << 20  # per answer, for WebSocket resume
    replay_ttl: float = 120.0  # how long a finished answer can be resumed
    resume_grace: float = 30.0  # how long an answer keeps running after its WebSocket dropped
    max_body_bytes: int = 4 << 20
    # -- connections (`ernie-widget serve`): unauthenticated clients must not hold the process's resources
    max_connections: int = 1000  # open connections at once (lowered to fit RLIMIT_NOFILE)
    header_timeout: float = 10.0  # seconds a connection may take to send a request's headers
    ws_max_size: int = 64 << 10  # largest WebSocket message, checked from the frame header before reading it
    shutdown_grace: float = 10.0  # seconds answers in flight get to finish after SIGTERM
    # -- content filter and logs
    content_filter: str | None = None  # a blocklist file, or module:function
    filter_notice: str = "[内容已撤回 / content withdrawn by the gateway's content filter]"
    log_prompts: bool = False
    # -- TLS (`ernie-widget serve`): both files, or neither (then put a TLS-terminating proxy in front)
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    # opt-in per-user Prometheus series: at most this many distinct users get their own label, the rest "other"
    metrics_users: int = 0

    def validate(self) -> None:
        """Refuse unsafe combinations before anything listens."""
        if self.no_auth and self.host not in LOOPBACK_HOSTS:
            raise ValueError("--no-auth is only allowed with --host 127.0.0.1 (or ::1)")
        if sum(bool(x) for x in (self.jwt_secret, self.jwt_public_key, self.jwks_url)) > 1:
            raise ValueError("choose one of --jwt-secret (HS256), --jwt-public-key (RS256) and --jwks-url")
        if self.jwks_url is not None:
            _check_jwks_url(self.jwks_url)
            if not 10 <= self.jwks_refresh <= 86400:
                raise ValueError("--jwks-refresh must be between 10 and 86400 seconds")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("TLS needs both --ssl-certfile and --ssl-keyfile")
        for path in (self.ssl_certfile, self.ssl_keyfile):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"证书文件不存在 / TLS file not found: {path}")
        for spec in self.upstreams:
            spec.validate()
        if len({spec.name for spec in self.upstreams}) != len(self.upstreams):
            raise ValueError("two --upstream flags have the same name")
        if not 0 <= self.upstream_retries <= 10:
            raise ValueError("--upstream-retries must be between 0 and 10")
        if self.database_url is not None and not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ValueError("--database-url must be a postgresql://user@host:port/db URL (SQLite: use --keys)")
        if self.upstream_transport not in ("auto", "aiohttp", "httpx2"):
            raise ValueError("--upstream-transport must be auto, aiohttp or httpx2")
        if self.stream_buffer_bytes < 1024:
            raise ValueError("the stream buffer must be at least 1024 bytes")
        if self.admin_token is not None and len(self.admin_token) < 24:
            raise ValueError("the admin token must be at least 24 characters (e.g. python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))')")
        if not 0 <= self.metrics_users <= 10_000:
            raise ValueError("--metrics-users must be between 0 and 10000")
        if self.max_connections < 1 or self.header_timeout <= 0 or self.ws_max_size < 1024 or self.shutdown_grace < 0:
            raise ValueError("--max-connections ≥ 1, --header-timeout > 0, --ws-max-size ≥ 1024, --shutdown-grace ≥ 0")
