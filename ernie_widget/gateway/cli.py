"""`ernie-widget serve …` / `python -m ernie_widget.gateway …`: run the gateway, or manage its API keys.

    ernie-widget serve [--host 127.0.0.1] [--port 8787] [--provider …] [--jwt-secret …] [--redis redis://…]
    ernie-widget serve keys add NAME [--rpm N] [--tpm N] [--daily-tokens N] [--models a,b] [--expires-in 90d]
    ernie-widget serve keys rotate NAME [--grace 1d]     a new key; the old one keeps working for the grace period
    ernie-widget serve keys list [--json]
    ernie-widget serve keys revoke NAME
    ernie-widget serve usage [--since YYYY-MM-DD] [--until …] [--user key:NAME] [--json]
    ernie-widget serve audit [--limit N] [--json]

The upstream credentials come from the usual environment variables (QIANFAN_API_KEY, ERNIE_BASE_URL, …)
or a `.env` file, exactly as for the client; with none set, the embedded local model is used if installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .accesslog import ACCESS_LOGGER
from .settings import GatewaySettings, UpstreamSpec, default_keys_path

__all__ = ["main", "serve_parser"]


def serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ernie-widget serve",
                                description="Serve ERNIE to a team: OpenAI-compatible HTTP + WebSocket gateway.",
                                epilog="keys: ernie-widget serve keys add|rotate|list|revoke …; "
                                       "reports: ernie-widget serve usage|audit")
    a = p.add_argument
    a("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    a("--port", type=int, default=8787)
    g = p.add_argument_group("upstream")
    g.add_argument("--provider", help="qianfan, qianfan-v1, aistudio, openai, local (default: from the environment)")
    g.add_argument("--model", help="default model (or a GGUF path for local)")
    g.add_argument("--base-url", help="upstream base URL")
    g.add_argument("--api-key", help="upstream key (prefer the environment variables: argv is visible in ps)")
    g.add_argument("--models", default="", help="comma-separated model names callers may request (default: any)")
    g.add_argument("--upstream-rpm", type=int, help="requests/min for the gateway's own key (shared via --redis)")
    g.add_argument("--upstream-tpm", type=int, help="tokens/min for the gateway's own key (shared via --redis)")
    g.add_argument("--max-concurrency", type=int, default=64, help="upstream requests at once")
    g.add_argument("--upstream", action="append", default=[], metavar="NAME=PROVIDER,URL[,models=a*|b]",
                   help="one more upstream, tried before the default one for the models it serves (repeatable): "
                        "NAME=PROVIDER,BASE_URL[,models=PATTERN|PATTERN][,model=DEFAULT][,key-env=VAR]; on a "
                        "connection error or 5xx before any content the next upstream answers")
    g.add_argument("--upstream-retries", type=int, default=2,
                   help="retries on one upstream before the next one answers (default 2)")
    g.add_argument("--upstream-transport", choices=("auto", "aiohttp", "httpx2"), default="auto",
                   help="HTTP stack for upstream requests: aiohttp when installed (auto), or httpx2")
    g = p.add_argument_group("auth")
    g.add_argument("--keys", type=Path, help=f"API keys database (default {default_keys_path()})")
    g.add_argument("--database-url", default=os.environ.get("ERNIE_GATEWAY_DATABASE_URL"),
                   help="postgresql://… for keys, audit and usage shared by replicas, instead of --keys "
                        "(or $ERNIE_GATEWAY_DATABASE_URL; needs $ERNIE_GATEWAY_KEY_SECRET)")
    g.add_argument("--jwt-secret", default=os.environ.get("ERNIE_GATEWAY_JWT_SECRET"),
                   help="accept HS256 JWTs signed with this secret (or $ERNIE_GATEWAY_JWT_SECRET)")
    g.add_argument("--jwt-public-key", type=Path, help="accept RS256 JWTs verified with this PEM public key")
    g.add_argument("--jwks-url", default=os.environ.get("ERNIE_GATEWAY_JWKS_URL"),
                   help="accept JWTs signed by a key of this JWKS (https; keys rotate without a restart)")
    g.add_argument("--jwks-refresh", type=float, default=300.0, help="seconds between JWKS fetches (300)")
    g.add_argument("--jwt-audience")
    g.add_argument("--jwt-issuer")
    g.add_argument("--no-auth", action="store_true", help="no authentication (only with --host 127.0.0.1)")
    g.add_argument("--admin-token-file", type=Path,
                   help="turns on the admin API (/admin/…) for this bearer token (or $ERNIE_GATEWAY_ADMIN_TOKEN)")
    g = p.add_argument_group("limits (for users without their own: JWT users, keys added without limits)")
    g.add_argument("--rpm", type=int, help="requests per minute per user")
    g.add_argument("--tpm", type=int, help="tokens per minute per user")
    g.add_argument("--daily-tokens", type=int, help="tokens per user per UTC day")
    g.add_argument("--redis", help="redis://… shared by replicas for limits and budgets")
    g = p.add_argument_group("streaming")
    g.add_argument("--heartbeat", type=float, default=15.0, help="seconds between SSE keep-alive comments")
    g.add_argument("--stream-buffer", type=int, default=1 << 20, help="bytes buffered per connection")
    g.add_argument("--send-timeout", type=float, default=30.0, help="seconds one blocked write may take")
    g.add_argument("--replay-bytes", type=int, default=1 << 20, help="WebSocket resume buffer per answer")
    g.add_argument("--replay-ttl", type=float, default=120.0, help="seconds a finished answer stays resumable")
    g.add_argument("--resume-grace", type=float, default=30.0,
                   help="seconds an answer keeps running after its WebSocket dropped")
    g = p.add_argument_group("connections and shutdown")
    g.add_argument("--max-connections", type=int, default=1000,
                   help="open connections at once (default 1000, lowered to fit the open-file limit); at the cap "
                        "the oldest connection still sending its headers makes room")
    g.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a connection may take to send a request's headers (default 10)")
    g.add_argument("--ws-max-size", type=int, default=64 << 10,
                   help="largest WebSocket message in bytes (default 65536)")
    g.add_argument("--ssl-certfile", type=Path, help="serve HTTPS/WSS with this certificate chain (PEM)")
    g.add_argument("--ssl-keyfile", type=Path, help="the certificate's private key (PEM)")
    g.add_argument("--shutdown-grace", type=float, default=10.0,
                   help="on SIGTERM: seconds answers in flight get to finish before they end with a "
                        "server_shutdown error (default 10)")
    g = p.add_argument_group("content and logs")
    g.add_argument("--filter", help="blocklist file, or module:function, applied to prompts and answers")
    g.add_argument("--filter-notice", help="what replaces withdrawn text")
    g.add_argument("--log-prompts", action="store_true", help="include prompts in the access log (off by default)")
    g.add_argument("--metrics-users", type=int, default=0,
                   help="per-user Prometheus series for the first N users (the rest as 'other'; default 0: off)")
    g.add_argument("--log-level", default="info", help="uvicorn's log level")
    return p


def settings_from_args(args: argparse.Namespace) -> GatewaySettings:
    s = GatewaySettings(
        host=args.host, port=args.port, provider=args.provider, model=args.model, base_url=args.base_url,
        api_key=args.api_key, models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
        upstream_rpm=args.upstream_rpm, upstream_tpm=args.upstream_tpm, max_concurrency=args.max_concurrency,
        upstream_transport=args.upstream_transport, upstream_retries=args.upstream_retries,
        upstreams=tuple(UpstreamSpec.parse(u) for u in args.upstream),
        no_auth=args.no_auth, keys_path=args.keys or default_keys_path(), database_url=args.database_url or None,
        jwt_secret=args.jwt_secret,
        jwt_public_key=args.jwt_public_key.read_text() if args.jwt_public_key else None,
        jwt_audience=args.jwt_audience, jwt_issuer=args.jwt_issuer, default_rpm=args.rpm, default_tpm=args.tpm,
        default_daily_tokens=args.daily_tokens, redis_url=args.redis, heartbeat=args.heartbeat,
        stream_buffer_bytes=args.stream_buffer, send_timeout=args.send_timeout, replay_bytes=args.replay_bytes,
        replay_ttl=args.replay_ttl, resume_grace=args.resume_grace, content_filter=args.filter,
        log_prompts=args.log_prompts, max_connections=args.max_connections, header_timeout=args.header_timeout,
        ws_max_size=args.ws_max_size, shutdown_grace=args.shutdown_grace, metrics_users=args.metrics_users,
        jwks_url=args.jwks_url, jwks_refresh=args.jwks_refresh, ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        admin_token=(args.admin_token_file.read_text(encoding="utf-8").strip() if args.admin_token_file
                     else os.environ.get("ERNIE_GATEWAY_ADMIN_TOKEN") or None),
    )
    if args.filter_notice:
        s.filter_notice = args.filter_notice
    return s


def _configure_logging() -> None:
    access = logging.getLogger(ACCESS_LOGGER)
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def serve(argv: Sequence[str]) -> int:
    args = serve_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        settings.validate()
    except (ValueError, OSError) as exc:
        print(f"ernie-widget serve: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from ..client.errors import ConfigurationError
    from .app import create_app

    _configure_logging()
    try:
        app = create_app(settings)
    except (ValueError, ImportError, ConfigurationError, ConnectionError) as exc:
        print(f"ernie-widget serve: {exc}", file=sys.stderr)
        return 2
    auth = "none (loopback only)" if settings.no_auth else "API keys" + (" + JWT" if (
        settings.jwt_secret or settings.jwt_public_key or settings.jwks_url) else "")
    gw = app.state.gateway
    scheme = "https" if settings.ssl_certfile else "http"
    print(f"ernie-widget gateway on {scheme}://{settings.host}:{settings.port}/v1 — upstream {gw.client.provider} "
          f"({gw.client.model}), auth: {auth}" + (", limits and resume shared via Redis" if settings.redis_url else "")
          + (", keys and usage in PostgreSQL" if settings.database_url else ""),
          file=sys.stderr, flush=True)
    max_connections, backlog = _connection_cap(settings.max_connections, settings.max_concurrency)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=args.log_level,
                            access_log=False, timeout_graceful_shutdown=3, ws_max_size=settings.ws_max_size,
                            backlog=backlog, http=guarded_protocol(max_connections, settings.header_timeout),
                            ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
                            ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None)
    server = draining_server(config, gw, settings.shutdown_grace)
    server.run()
    return 0


# -- serving: connection limits and a draining shutdown --------------------------------------------------


def _connection_cap(wanted: int, upstream: int) -> tuple[int, int]:
    """(connection cap, listen backlog). Raise the soft open-file limit to the hard one and keep the cap
    below it, leaving room for the upstream connections, the process's own files and one burst of
    ``accept`` (asyncio accepts up to ``backlog`` sockets before any protocol sees one): so ``accept``
    never fails with EMFILE."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return wanted, 2048
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted, 2048
    backlog = max(16, min(2048, soft // 8))
    cap = max(1, min(wanted, soft - upstream - 64 - backlog))
    if cap < wanted:
        print(f"ernie-widget serve: at most {cap} connections (open-file limit {soft})", file=sys.stderr)
    return cap, backlog


_BUSY_BODY = json.dumps({"error": {"message": "连接数已满 / too many connections; retry", "type": "server_error",
                                   "code": "too_many_connections", "param": None}}, ensure_ascii=False).encode()
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
         b"Connection: close\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


def guarded_protocol(max_connections: int, header_timeout: float) -> type[Any]:
    """uvicorn's h11 protocol with what it lacks against clients that never authenticate: a deadline for
    a request's headers (from the connection or the previous response on), and a cap on open connections
    — at the cap the oldest connection still sending headers is closed to make room, or, if there is none,
    the new one is refused with a 503. (``limit_concurrency`` only counts after headers are parsed.)"""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _refused = False
        _deadline: asyncio.TimerHandle | None = None

        def _pending(self) -> dict[Any, None]:
            pending: dict[Any, None] | None = getattr(self.server_state, "ernie_pending_headers", None)
            if pending is None:
                pending = {}
                self.server_state.ernie_pending_headers = pending  # type: ignore[attr-defined]
            return pending

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.server_state.connections) >= max_connections:
                victim = next(iter(self._pending()), None)
                if victim is None:
                    self._refused = True
                    transport.write(_BUSY)
                    transport.close()
                    return
                victim._headers_too_slow()
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(header_timeout, self._headers_too_slow)
            self._pending()[self] = None

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self._pending().pop(self, None)

        def _headers_too_slow(self) -> None:
            self._disarm()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and self.conn.their_state is h11.IDLE:
                self._arm()  # the next request on a kept-alive connection: its headers get the same deadline
            super().data_received(data)
            if self._deadline is not None and self.conn.their_state is not h11.IDLE:
                self._disarm()  # the headers are in

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


def _server_class() -> type[Any]:
    import uvicorn

    class _DrainingServer(uvicorn.Server):
        """uvicorn, but SIGTERM/SIGINT first drain the gateway (`Gateway.drain`), then stop it; the exit
        status is 0. A second SIGINT stops at once."""

        def __init__(self, config: uvicorn.Config, gateway: Any, grace: float) -> None:
            super().__init__(config)
            self.gateway = gateway
            self.grace = grace
            self._draining: asyncio.Task[None] | None = None

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig)
            try:
                yield
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

        def _on_signal(self, sig: int) -> None:
            if self._draining is None:
                print(f"ernie-widget serve: {signal.Signals(sig).name}: draining for up to {self.grace:g}s",
                      file=sys.stderr, flush=True)
                self._draining = asyncio.get_running_loop().create_task(self._drain())
            elif sig == signal.SIGINT:
                self.should_exit = self.force_exit = True

        async def _drain(self) -> None:
            try:
                await self.gateway.drain(self.grace)
            finally:
                self.should_exit = True

    return _DrainingServer


def draining_server(config: Any, gateway: Any, grace: float) -> Any:
    """A uvicorn ``Server`` whose SIGTERM drains ``gateway`` first (uvicorn is imported only to serve)."""
    return _server_class()(config, gateway, grace)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """``90d``, ``12h``, ``30m``, ``45s`` or plain seconds → seconds (an argparse type)."""
    text = text.strip().lower()
    unit = _UNITS.get(text[-1:])
    number = text[:-1] if unit else text
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"无效的时长 / invalid duration {text!r}: e.g. 90d, 12h, 30m, 3600") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"无效的时长 / invalid duration {text!r}")
    return value


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def keys_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="ernie-widget serve keys", description="Manage the gateway's API keys.")
    p.add_argument("--keys", type=Path, help=f"keys database (default {default_keys_path()})")
    sub = p.add_subparsers(dest="cmd", required=True)
    add = sub.add_parser("add", help="create a key for NAME and print it once")
    add.add_argument("name")
    add.add_argument("--rpm", type=int)
    add.add_argument("--tpm", type=int)
    add.add_argument("--daily-tokens", type=int)
    add.add_argument("--models", help="comma-separated models this key may use (default: any the gateway allows)")
    add.add_argument("--expires-in", type=duration, help="the key stops working after this (e.g. 90d, 12h)")
    rot = sub.add_parser("rotate", help="a new key for NAME with the same limits; the old one lives --grace longer")
    rot.add_argument("name")
    rot.add_argument("--grace", type=duration, default=86400.0, help="how long the old key keeps working (1d)")
    rot.add_argument("--expires-in", type=duration, help="the new key stops working after this")
    ls = sub.add_parser("list", help="list keys (never the keys themselves)")
    ls.add_argument("--json", action="store_true")
    rv = sub.add_parser("revoke", help="revoke NAME's keys")
    rv.add_argument("name")
    for sp in (add, rot, ls, rv):
        sp.add_argument("--keys", type=Path, dest="keys_sub")
        sp.add_argument("--database-url", dest="database_url_sub")
    _database_flag(p)
    args = p.parse_args(argv)
    from .keys import open_keys

    try:
        store = open_keys(args.database_url_sub or args.database_url or args.keys_sub or args.keys
                          or default_keys_path())
    except (ValueError, ConnectionError) as exc:
        print(f"ernie-widget serve keys: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            if args.cmd == "add":
                models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
                key = store.add(args.name, rpm=args.rpm, tpm=args.tpm, daily_tokens=args.daily_tokens, models=models,
                                expires_in=args.expires_in, actor=_actor())
                print(key)
                print(f"key for {args.name!r} created — store it now, it is not shown again", file=sys.stderr)
                return 0
            if args.cmd == "rotate":
                key = store.rotate(args.name, grace=args.grace, expires_in=args.expires_in, actor=_actor())
                print(key)
                print(f"new key for {args.name!r} — the old one works for {args.grace:g} s more; store this one now",
                      file=sys.stderr)
                return 0
        except ValueError as exc:
            print(f"ernie-widget serve keys: {exc}", file=sys.stderr)
            return 1
        if args.cmd == "list":
            records = store.list()
            if args.json:
                print(json.dumps([r.public() for r in records], ensure_ascii=False, indent=1))
                return 0
            print(f"{'NAME':<24} {'KEY':<12} {'RPM':>6} {'TPM':>8} {'DAILY':>10}  {'CREATED':<16} {'EXPIRES':<16} "
                  f"{'STATE':<8} MODELS")
            for r in records:
                print(f"{r.name:<24} {r.hint + '…':<12} {_n(r.rpm):>6} {_n(r.tpm):>8} {_n(r.daily_tokens):>10}  "
                      f"{_when(r.created):<16} {_when(r.expires):<16} {r.state:<8} "
                      f"{','.join(r.models) if r.models is not None else '*'}")
            return 0
        if store.revoke(args.name, actor=_actor()):
            print(f"revoked {args.name!r}", file=sys.stderr)
            return 0
        print(f"ernie-widget serve keys: no active key named {args.name!r}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def usage_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="ernie-widget serve usage",
                                description="Tokens and requests per user, by UTC day and model.")
    p.add_argument("--keys", type=Path, help=f"the gateway's database (default {default_keys_path()})")
    p.add_argument("--since", help="first day, YYYY-MM-DD")
    p.add_argument("--until", help="last day, YYYY-MM-DD")
    p.add_argument("--user", help="one user: key:NAME or jwt:SUBJECT")
    p.add_argument("--json", action="store_true")
    _database_flag(p)
    args = p.parse_args(argv)
    from .usage import open_usage

    try:
        store = open_usage(args.database_url or args.keys or default_keys_path())
    except ConnectionError as exc:
        print(f"ernie-widget serve usage: {exc}", file=sys.stderr)
        return 2
    try:
        rows = store.report(since=args.since, until=args.until, user=args.user)
    finally:
        store.close()
    if args.json:
        print(json.dumps([r.public() for r in rows], ensure_ascii=False, indent=1))
        return 0
    print(f"{'DAY':<10}  {'USER':<28} {'MODEL':<28} {'REQUESTS':>8} {'PROMPT':>10} {'COMPLETION':>10} {'TOTAL':>10}")
    for r in rows:
        print(f"{r.day:<10}  {r.user:<28} {r.model:<28} {r.requests:>8} {r.prompt_tokens:>10} "
              f"{r.completion_tokens:>10} {r.total_tokens:>10}")
    return 0


def audit_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="ernie-widget serve audit", description="Admin actions, newest first.")
    p.add_argument("--keys", type=Path, help=f"the gateway's database (default {default_keys_path()})")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    _database_flag(p)
    args = p.parse_args(argv)
    from .keys import open_keys

    try:
        store = open_keys(args.database_url or args.keys or default_keys_path())
    except (ValueError, ConnectionError) as exc:
        print(f"ernie-widget serve audit: {exc}", file=sys.stderr)
        return 2
    try:
        entries = store.audit(args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps([e.public() for e in entries], ensure_ascii=False, indent=1))
        return 0
    for e in entries:
        print(f"{_when(e.ts):<16}  {e.actor:<28} {e.action:<8} {e.target:<24} "
              f"{json.dumps(e.detail, ensure_ascii=False)}")
    return 0


def _database_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", default=os.environ.get("ERNIE_GATEWAY_DATABASE_URL") or None,
                   help="the replicas' postgresql://… database instead of --keys (or $ERNIE_GATEWAY_DATABASE_URL)")


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "keys":
        return keys_main(argv[1:])
    if argv and argv[0] == "usage":
        return usage_main(argv[1:])
    if argv and argv[0] == "audit":
        return audit_main(argv[1:])
    return serve(argv)
