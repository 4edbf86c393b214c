"""`Gateway`: what the routes share — the upstream client, auth, quotas, metrics, filter, logs, resume store."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from ..client import AsyncErnie
from .accesslog import AccessLog
from .auth import Authenticator, Principal
from .errors import GatewayError
from .filters import ContentFilter
from .keys import KeyStorage, KeyStore, open_keys
from .metrics import GatewayMetrics
from .quotas import Quotas
from .resume import ReplayStore
from .settings import GatewaySettings, UpstreamSpec
from .usage import open_usage

__all__ = ["Gateway", "Upstream", "upstream_client"]

logger = logging.getLogger("ernie_widget.gateway")


@dataclass(frozen=True)
class Upstream:
    """An upstream the gateway can send to: its name (for logs and metrics), client and the models it serves."""

    name: str
    client: AsyncErnie
    spec: UpstreamSpec | None  # None: the default upstream, which serves every model

    def serves(self, model: str | None) -> bool:
        return self.spec is None or self.spec.serves(model)


def upstream_client(settings: GatewaySettings, *, max_retries: int = 2, spec: UpstreamSpec | None = None
                    ) -> AsyncErnie:
    """The client a gateway with ``settings`` sends upstream with (to ``spec``'s upstream when given)."""
    provider: str | None = spec.provider if spec else settings.provider
    model = spec.model if spec else settings.model
    base_url = spec.base_url if spec else settings.base_url
    api_key = (os.environ.get(spec.key_env) if spec.key_env else None) if spec else settings.api_key
    client = AsyncErnie(
        provider, model=model, base_url=base_url, api_key=api_key,
        max_concurrency=settings.max_concurrency, rpm=settings.upstream_rpm, tpm=settings.upstream_tpm,
        rate_limit_backend=settings.redis_url, max_retries=max_retries,
    )
    # a gateway spends most of its CPU reading upstream streams; aiohttp's C parser hands over whatever
    # arrived in one piece, where httpx2 yields every chunked-encoding frame on its own
    return client.for_concurrency(settings.max_concurrency, transport=settings.upstream_transport, extra="gateway")


class Gateway:
    """Everything the routes share: the upstream client, auth, quotas, metrics, filter, logs, replay store."""

    def __init__(self, settings: GatewaySettings, client: AsyncErnie | None = None,
                 keys: KeyStorage | None = None) -> None:
        settings.validate()
        self.settings = settings
        self.client = client or upstream_client(settings, max_retries=settings.upstream_retries)
        # the extra upstreams in their order, then the default one
        self.upstreams = [Upstream(spec.name, upstream_client(settings, max_retries=settings.upstream_retries,
                                                              spec=spec), spec)
                          for spec in settings.upstreams] + [Upstream("default", self.client, None)]
        if keys is None and not settings.no_auth and (settings.database_url or settings.keys_path) is not None:
            keys = open_keys(settings.database_url or settings.keys_path)  # type: ignore[arg-type]
        if not settings.no_auth and keys is None and not (settings.jwt_secret or settings.jwt_public_key
                                                          or settings.jwks_url):
            raise ValueError("no way to authenticate: give a keys database, --jwt-secret/--jwt-public-key, "
                             "or --no-auth on 127.0.0.1")
        self.keys = keys
        self.auth = Authenticator(settings, keys)
        self.quotas = Quotas(settings.redis_url)
        # usage lives beside the keys (one file, or the replicas' database); without either it counts in memory
        self.usage = open_usage(settings.database_url or getattr(keys, "url", None)
                                or (keys.path if isinstance(keys, KeyStore) else settings.keys_path))
        self.metrics = GatewayMetrics(max_users=settings.metrics_users)
        self.filter = ContentFilter.load(settings.content_filter) if settings.content_filter else None
        self.access = AccessLog(settings.log_prompts)
        self.replay = ReplayStore(settings.replay_bytes, settings.replay_ttl, settings.resume_grace)
        if settings.redis_url:  # replicas share the resume window: a client may resume on any of them
            from .resume_redis import RedisReplayStore

            self.replay = RedisReplayStore(settings.redis_url, settings.replay_bytes, settings.replay_ttl,
                                           settings.resume_grace)
        # shutdown: `drain` turns /healthz to 503, refuses new answers, gives running ones a grace period,
        # then ends what is left explicitly (AnswerRun.shut_down, WSConnection.shut_down)
        self.draining = False
        self.runs: set[Any] = set()  # AnswerRuns in flight
        self.connections: set[Any] = set()  # open WSConnections
        self.open_streams = 0  # SSE responses still writing
        self._usage_flushed = time.monotonic()

    def route(self, model: str | None) -> list[Upstream]:
        """The upstreams that serve ``model``, in the order to try them."""
        return [u for u in self.upstreams if u.serves(model)]

    def reject(self, transport: str, err: GatewayError, started: float, principal: Principal | None) -> None:
        """Count and log a request refused before it reached upstream."""
        self.metrics.errors.labels(err.code).inc()
        self.access.write(transport=transport, user=principal.user if principal else None,
                          auth=principal.via if principal else None, status=err.status,
                          error=err.code, duration_ms=round((time.monotonic() - started) * 1000, 1))

    def log_internal(self, msg: str, *args: Any) -> None:
        logger.warning(msg, *args)

    async def sweep_forever(self) -> None:
        interval = max(0.05, min(1.0, self.settings.resume_grace / 4, self.settings.replay_ttl / 4))
        while True:
            await asyncio.sleep(interval)
            self.replay.sweep()
            now = time.monotonic()
            await self.refresh_jwks(now)
            if now - self._usage_flushed >= 1.0:
                self._usage_flushed = now
                try:
                    await asyncio.to_thread(self.usage.flush)
                except Exception as exc:  # a locked or full disk must not stop the sweeper
                    logger.warning("usage flush failed: %s", type(exc).__name__)

    async def refresh_jwks(self, now: float | None = None) -> None:
        """Fetch the JWKS in a thread when it is due (start, every --jwks-refresh, soon after an unknown key id)."""
        jwks = self.auth.jwks
        if jwks is None or not jwks.due(now):
            return
        try:
            await asyncio.to_thread(jwks.fetch)
        except Exception as exc:  # the identity provider is down: keep the keys we have, try again later
            logger.warning("JWKS fetch from %s failed: %s", jwks.url, type(exc).__name__)

    async def drain(self, grace: float) -> None:
        """The shutdown: refuse new work at once, let answers in flight finish for up to ``grace`` seconds,
        then end every one still running with a ``server_shutdown`` error and close every WebSocket
        with 1012 (service restart) and its resume token."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.runs and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.runs:
            logger.warning("shutdown: ending %d answer(s) still running after %gs", len(self.runs), grace)
        for run in list(self.runs):
            run.shut_down()
        closing = [asyncio.ensure_future(c.shut_down()) for c in list(self.connections)]
        if closing:
            await asyncio.wait(closing, timeout=3)
        flush_deadline = loop.time() + 2  # the SSE responses write their error event and end
        while (self.open_streams or self.runs) and loop.time() < flush_deadline:
            await asyncio.sleep(0.02)

    async def aclose(self) -> None:
        self.replay.cancel_all()
        await self.replay.aclose()
        for upstream in self.upstreams:
            await upstream.client.aclose()
        self.quotas.close()
        self.usage.close()
        if self.keys is not None:
            self.keys.close()
