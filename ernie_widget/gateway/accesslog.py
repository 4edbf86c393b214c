"""One structured JSON line per request on the ``ernie_widget.gateway.access`` logger.

Fields: ts, transport, user, model, stream, status, error, ttft_ms, duration_ms, tokens_in, tokens_out,
finish_reason, id, upstream_id; ``prompt`` only with ``--log-prompts``. Every line goes through
`ernie_widget.client.redact`, so a key that reaches a message or a prompt is masked.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..client.redact import redact

__all__ = ["ACCESS_LOGGER", "AccessLog"]

ACCESS_LOGGER = "ernie_widget.gateway.access"


class AccessLog:
    def __init__(self, log_prompts: bool = False, logger: logging.Logger | None = None) -> None:
        self.log_prompts = log_prompts
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)

    def write(self, prompt: Any = None, **fields: Any) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        record: dict[str, Any] = {"ts": round(time.time(), 3), **fields}
        if self.log_prompts and prompt is not None:
            record["prompt"] = prompt
        line = redact(json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str))
        self.logger.info(line)
