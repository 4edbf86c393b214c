"""Prometheus metrics of one gateway app, in its own `CollectorRegistry` (two apps in a process never mix)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "GatewayMetrics"]

_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class GatewayMetrics:
    """Requests, errors by code, TTFT and duration, tokens in and out, streams in flight."""

    def __init__(self, registry: CollectorRegistry | None = None, *, max_users: int = 0) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        # per-user series are opt-in (`--metrics-users N`) and bounded: a label per user is a time series per user
        # in Prometheus, so only the first N users seen get their own, everyone after shares "other"
        self.max_users = max_users
        self._labelled: set[str] = set()
        if max_users:
            self.user_requests = Counter("ernie_gateway_user_requests", "Answers per user (first N users; "
                                         "the rest as 'other')", ["user"], registry=r)
            self.user_tokens = Counter("ernie_gateway_user_tokens", "Tokens per user (first N users; the rest "
                                       "as 'other')", ["user", "direction"], registry=r)
        self.requests = Counter("ernie_gateway_requests", "Chat requests received",
                                ["transport"], registry=r)
        self.errors = Counter("ernie_gateway_errors", "Chat requests that failed, by error code",
                              ["code"], registry=r)
        self.ttft = Histogram("ernie_gateway_ttft_seconds", "Time from request to the first streamed token",
                              buckets=_TTFT_BUCKETS, registry=r)
        self.duration = Histogram("ernie_gateway_request_duration_seconds", "Time from request to its end",
                                  buckets=_DURATION_BUCKETS, registry=r)
        self.tokens = Counter("ernie_gateway_tokens", "Tokens reported by the upstream service",
                              ["direction"], registry=r)
        self.fallbacks = Counter("ernie_gateway_upstream_fallbacks", "Answers moved to the next upstream after a "
                                 "connection error or 5xx before any content, by the upstream that failed",
                                 ["upstream"], registry=r)
        self.inflight = Gauge("ernie_gateway_inflight_streams", "Answers being streamed now", registry=r)

    def count_user(self, user: str, prompt_tokens: int, completion_tokens: int) -> None:
        """One answer of ``user`` in the per-user series (nothing when they are off)."""
        if not self.max_users:
            return
        if user not in self._labelled:
            if len(self._labelled) >= self.max_users:
                user = "other"
            else:
                self._labelled.add(user)
        self.user_requests.labels(user).inc()
        self.user_tokens.labels(user, "in").inc(prompt_tokens)
        self.user_tokens.labels(user, "out").inc(completion_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
