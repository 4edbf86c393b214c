"""The HTTP side: `POST …/ernie-widget/completion` streams NDJSON; `GET …/completion/status` shows the setup.

Both are authenticated, authorized Jupyter API handlers. The browser sends only the text around the cursor;
which host, model and key are used is the server's business (config.py), so the endpoint cannot be turned into
a way to send the server's key somewhere else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from pydantic import ValidationError
from tornado import web
from tornado.iostream import StreamClosedError

from ..client import ErnieError
from .service import CompletionRequest, CompletionService

__all__ = ["MAX_BODY", "SERVICE_KEY", "CompletionHandler", "StatusHandler"]

logger = logging.getLogger("ernie_widget.completion")

#: the largest request body taken; the budgets (prompt.py) keep far less than this of it
MAX_BODY = 256 * 1024
#: where the server's `CompletionService` lives in the tornado settings
SERVICE_KEY = "ernie_widget_completion"
#: the resource the authorizer is asked about
AUTH_RESOURCE = "ernie_widget_completion"
NDJSON = "application/x-ndjson"


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "code": code}}


def _validation_message(err: ValidationError) -> str:
    """What was wrong, naming fields but never echoing the values sent."""
    problems = []
    for e in err.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "body"
        problems.append(f"{where}: {'not allowed' if e['type'] == 'extra_forbidden' else e['msg']}")
    return ("请求无效：浏览器只能发送 prefix、suffix、language、cell_type、context / invalid request: the browser "
            "may send only prefix, suffix, language, cell_type and context; the server chooses the host, model "
            "and key (" + "; ".join(problems[:5]) + ")")


class _Base(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def service(self) -> CompletionService:
        service: CompletionService = self.settings[SERVICE_KEY]
        return service

    def refuse(self, status: int, message: str, code: str) -> None:
        self.set_status(status)
        self.finish(json.dumps(_error(message, code), ensure_ascii=False))


class StatusHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Which provider, model and configuration source the server uses (never a key)."""
        self.finish(json.dumps(self.service.settings.public(), ensure_ascii=False))


@web.stream_request_body
class CompletionHandler(_Base):
    """The body is streamed in and only its first `MAX_BODY` bytes are kept: a huge body costs the server no
    memory, and is still read to its end so the browser gets a clean 413 rather than a reset connection."""

    _task: asyncio.Task[None] | None = None
    _gone = False

    async def prepare(self) -> None:  # type: ignore[override]
        self._body = bytearray()
        self._size = 0
        await super().prepare()

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= MAX_BODY:
            self._body += chunk

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Stream one completion as NDJSON lines, each the whole cleaned text so far."""
        if self._size > MAX_BODY:
            return self.refuse(413, f"请求过大 / request body larger than {MAX_BODY // 1024} KiB", "too_large")
        try:
            request = CompletionRequest.model_validate_json(bytes(self._body))
        except ValidationError as err:
            return self.refuse(400, _validation_message(err), "invalid_request")
        service = self.service
        if service.client is None:
            return self.refuse(503, service.settings.message, "not_configured")
        self.set_header("Content-Type", NDJSON)
        self.set_header("Cache-Control", "no-cache, no-store")
        self.set_header("X-Accel-Buffering", "no")  # a reverse proxy must not hold lines back
        # the stream runs in its own task so a closed connection can cancel it (on_connection_close)
        self._task = asyncio.ensure_future(self._stream(service, request))
        await asyncio.wait({self._task})
        if self._gone:
            return
        if not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]
        self.finish(set_content_type=NDJSON)

    async def _stream(self, service: CompletionService, request: CompletionRequest) -> None:
        try:
            async for text, done in service.complete(request):
                self.write(_line({"done": True, "text": text} if done else {"text": text}))
                await self.flush()
        except StreamClosedError:
            self._gone = True
        except ErnieError as err:
            code = type(err).__name__
            await self._write_error(service.redact(err.message), code)
        except Exception:
            logger.exception("inline completion failed")  # the traceback goes to the server log only
            await self._write_error("补全失败 / the completion failed: see the Jupyter server's log", "internal")

    async def _write_error(self, message: str, code: str) -> None:
        try:
            self.write(_line(_error(message, code)))
            await self.flush()
        except StreamClosedError:
            self._gone = True

    def on_connection_close(self) -> None:
        """The browser went away (a keystroke aborted the fetch): stop the upstream request now."""
        self._gone = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        super().on_connection_close()
