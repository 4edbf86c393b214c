"""One structured JSON line per request on the ``ernie_widget.gateway.access`` logger.

Fields: ts, transport, user, auth (key, jwt, none), model, stream, status, error, ttft_ms, duration_ms,
tokens_in, tokens_out, finish_reason, id, upstream_id; ``prompt`` only with ``--log-prompts``. ``status``
is the real outcome — 502 for an upstream failure after content, 503 for a shutdown cut — not the 200
already on the wire. No field ever holds a key; the free text that could (the prompt) goes through
`ernie_widget.client.redact`, so a key pasted into a prompt is masked. The logger sits under
``ernie_widget``, so the client's `RedactingFilter` also passes over every whole line.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..client.redact import install_log_redaction, redact

__all__ = ["ACCESS_LOGGER", "AccessLog"]

ACCESS_LOGGER = "ernie_widget.gateway.access"


class AccessLog:
    def __init__(self, log_prompts: bool = False, logger: logging.Logger | None = None) -> None:
        self.log_prompts = log_prompts
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)
        install_log_redaction()  # now that the logger exists, it gets the filter too

    def write(self, prompt: Any = None, **fields: Any) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        record: dict[str, Any] = {"ts": round(time.time(), 3), **fields}
        if self.log_prompts and prompt is not None:
            record["prompt"] = _redacted(prompt)
        self.logger.info(json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str))


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value
