"""Prometheus metrics of one gateway app, in its own `CollectorRegistry` (two apps in a process never mix)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "GatewayMetrics"]

_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class GatewayMetrics:
    """Requests, errors by code, TTFT and duration, tokens in and out, streams in flight."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
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
        self.inflight = Gauge("ernie_gateway_inflight_streams", "Answers being streamed now", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
