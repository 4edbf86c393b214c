"""The ERNIE gateway: one process holds the ERNIE key and serves a team over HTTP and WebSocket.

    ernie-widget serve keys add alice --rpm 60 --daily-tokens 200000   # prints ewk_… once
    ernie-widget serve --host 0.0.0.0 --port 8787                       # upstream from QIANFAN_API_KEY etc.

* ``POST /v1/chat/completions`` — OpenAI-compatible, streamed (SSE) or not: the openai SDK,
  ``Ernie(provider="openai", base_url="http://host:8787/v1", api_key="ewk_…")`` and `ErnieChat` work as they are.
* ``GET /v1/ws`` — WebSocket for browsers, with resume after a dropped connection (see `ws`).
* ``GET /healthz``, ``GET /metrics`` (Prometheus).

Auth is per-user API keys (HMAC-SHA256 digests in SQLite, `keys`) or JWT bearer tokens (`auth`);
per-user RPM/TPM and daily token budgets answer 429 + Retry-After (`quotas`), shared by replicas with
``--redis``. Needs ``pip install 'ernie-widget[gateway]'``.

Every request is answered in the API's shape: a malformed body is a 400 naming the parameter
(`openai_wire`), a bug a 500 JSON error or an ``internal_error`` event, never a traceback or a silent
end. ``serve`` bounds unauthenticated clients (``--header-timeout``, ``--max-connections``,
``--ws-max-size``) and drains on SIGTERM (``--shutdown-grace``): see `cli`.
"""

from __future__ import annotations

from .app import Gateway, create_app
from .keys import KeyStore
from .settings import GatewaySettings

__all__ = ["Gateway", "GatewaySettings", "KeyStore", "create_app"]
