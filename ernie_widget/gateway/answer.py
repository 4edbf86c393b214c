"""`AnswerRun`: one answer from the upstream stream to a transport's sink, and its bookkeeping.

The transports (SSE, non-stream JSON, WebSocket) differ only in their `Sink`. The run turns
`StreamEvent`s into `Item`s, applies the output filter, notices a consumer that fell behind, and on
the way out — finished, failed or cancelled — settles the user's quota, updates the metrics and
writes the access-log line.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..client.errors import APIConnectionError, ErnieError, ServerError
from ..client.events import Usage
from .errors import GatewayError, from_ernie_error, internal_error, shutdown_error
from .items import Item
from .openai_wire import ChatRequest

if TYPE_CHECKING:
    from .auth import Principal
    from .quotas import Charge
    from .state import Gateway, Upstream

__all__ = ["AnswerRun", "Item", "Sink"]

ROOM_GRACE = 1.0  # seconds a full sink gets to make room before its consumer counts as too slow


class Sink(Protocol):
    def put(self, item: Item) -> bool:
        """Take an item; False means the consumer is too far behind (the run then stops)."""
        ...

    def abort(self, item: Item) -> None:
        """Drop whatever is still queued and end with ``item`` (an error)."""
        ...

    # optional: ``async def wait_for_room(self, item: Item, timeout: float) -> bool`` for a bounded sink


def slow_consumer_error() -> GatewayError:
    return GatewayError(200, "客户端读取太慢，连接已断开 / the client read too slowly; the stream was ended "
                        "(bounded buffer full)", "slow_consumer", "server_error")


class AnswerRun:
    """Drives one upstream stream into a sink. ``await run.run(sink)``; cancel the task to stop upstream at once."""

    def __init__(self, gw: Gateway, principal: Principal, req: ChatRequest, transport: str, charge: Charge,
                 started: float | None = None) -> None:
        self.gw = gw
        self.principal = principal
        self.req = req
        self.transport = transport
        self.charge = charge
        self.started = time.monotonic() if started is None else started
        self.first_at: float | None = None
        self.status = 200
        self.error_code: str | None = None
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.model: str | None = req.model or gw.client.model
        self.upstream_id: str | None = None
        self.content_started = False
        self.upstream: str | None = None  # the name of the upstream that answered (or failed last)
        self._sent = False  # an item reached the sink: from then on, no other upstream may answer
        self._text: list[str] = []
        self._text_len = 0
        self._sink: Sink | None = None
        self._task: asyncio.Task[Any] | None = None

    async def run(self, sink: Sink) -> None:
        gw = self.gw
        gw.metrics.inflight.inc()
        self._sink = sink
        self._task = asyncio.current_task()
        gw.runs.add(self)
        try:
            await self._run(sink)
        except asyncio.CancelledError:
            if self.error_code is None:
                self.status, self.error_code = 499, "client_disconnected"
            raise
        except Exception as exc:  # a bug: the stream still ends with an explicit error, never a clean end
            self._fail(sink, internal_error(exc))
        finally:
            gw.runs.discard(self)
            gw.metrics.inflight.dec()
            await self._finish()

    def shut_down(self) -> None:
        """End the answer now for a server shutdown: an explicit ``server_shutdown`` error, upstream cancelled."""
        if self._task is None or self._task.done() or self.error_code is not None:
            return
        err = shutdown_error()
        self.status, self.error_code = err.status, err.code
        if self._sink is not None:
            self._sink.abort(Item("error", error=err))
        self._task.cancel()

    async def _run(self, sink: Sink) -> None:
        req = self.req
        upstreams = self.gw.route(req.model)  # never empty: the default upstream serves every model
        for i, upstream in enumerate(upstreams):
            self.upstream = upstream.name
            if req.model is None:
                self.model = upstream.client.model
            outcome = await self._run_on(upstream, sink, last=i == len(upstreams) - 1)
            if outcome == "stopped":  # failed, withdrawn or too slow a reader: the sink has its last item
                return
            if outcome == "done":
                break
            # nothing reached the caller yet: the next upstream that serves the model answers instead
            self.gw.metrics.fallbacks.labels(upstream.name).inc()
            self.gw.log_internal("upstream %s failed before any content (%s): trying %s", upstream.name,
                                 type(outcome).__name__, upstreams[i + 1].name)
        self.finish_reason = self.finish_reason or "stop"
        sink.put(Item("end", usage=self.usage, finish_reason=self.finish_reason, model=self.model))

    async def _run_on(self, upstream: Upstream, sink: Sink, *, last: bool) -> str | ErnieError:
        """Stream from ``upstream`` into ``sink``: "done", "stopped" (the sink got an error or withdrawal), or the
        error to fall back on — a connection error or 5xx before anything reached the sink, another upstream left."""
        req = self.req
        try:
            stream = upstream.client.stream(req.messages, model=req.model, **req.params)
        except ErnieError as err:  # a request the upstream surface cannot take (checked before sending)
            self._fail(sink, from_ernie_error(err))
            return "stopped"
        async with stream:  # leaving it closes the upstream response at once
            try:
                async for ev in stream:
                    item = self._item(ev)
                    if item is None:
                        continue
                    self._sent = True
                    if not sink.put(item) and not await self._put_when_room(sink, item):
                        self._slow(sink)
                        return "stopped"
                    if item.kind in ("text", "reasoning") and self._blocked(item):
                        self._withdraw(sink)
                        return "stopped"
            except ErnieError as err:
                if not last and not self._sent and isinstance(err, APIConnectionError | ServerError):
                    return err
                self._fail(sink, from_ernie_error(err))
                return "stopped"
            st = stream.state
            self.upstream_id = st.request_id
        return "done"

    def _item(self, ev: Any) -> Item | None:
        if ev.model:
            self.model = ev.model
        if ev.request_id and not self.upstream_id:
            self.upstream_id = ev.request_id
        if ev.type in ("text", "reasoning"):
            if not ev.text:
                return None
            if self.first_at is None:
                self.first_at = time.monotonic()
                self.gw.metrics.ttft.observe(self.first_at - self.started)
            self.content_started = True
            return Item(ev.type, text=ev.text)
        if ev.type == "usage":
            self.usage = ev.usage
            return None
        if ev.type == "finish":
            self.finish_reason = ev.finish_reason
            return None
        if ev.type == "safety":
            return Item("safety", safety=ev.safety)
        return None  # search results are not part of the OpenAI wire format

    async def _put_when_room(self, sink: Sink, item: Item) -> bool:
        """A full sink gets a moment to make room, the upstream read paused meanwhile: one network read can
        bring a burst bigger than the buffer, which is no sign of a slow consumer. The moment is shorter
        than ``send_timeout``, so a consumer that is really stuck still gets the clear error event."""
        wait = getattr(sink, "wait_for_room", None)
        if wait is None or not await wait(item, min(ROOM_GRACE, self.gw.settings.send_timeout / 2)):
            return False
        return sink.put(item)

    def _blocked(self, item: Item) -> bool:
        flt = self.gw.filter
        if flt is None:
            return False
        self._text.append(item.text)
        self._text_len += len(item.text)
        if len(self._text) > 1:
            self._text[:] = ["".join(self._text)]
        return flt.check(self._text[0], "output", new_chars=len(item.text)) is not None

    def _withdraw(self, sink: Sink) -> None:
        self.error_code = "content_filtered"
        self.finish_reason = "content_filter"
        sink.put(Item("withdraw", text=self.gw.settings.filter_notice))
        sink.put(Item("end", usage=self.usage, finish_reason="content_filter", model=self.model))

    def _slow(self, sink: Sink) -> None:
        err = slow_consumer_error()
        self.error_code = err.code
        sink.abort(Item("error", error=err))

    def _fail(self, sink: Sink, err: GatewayError) -> None:
        self.error_code = err.code
        # the real outcome, also after content started (where the transport already sent its 200); an
        # error sent as an event after content has status 200 on the wire: the log says what happened
        self.status = err.status if err.status >= 400 else 502
        sink.put(Item("error", error=err))

    async def _finish(self) -> None:
        gw = self.gw
        now = time.monotonic()
        duration = now - self.started
        gw.metrics.duration.observe(duration)
        if self.error_code is not None:
            gw.metrics.errors.labels(self.error_code).inc()
        usage = self.usage
        if usage is not None:
            gw.metrics.tokens.labels("in").inc(usage.prompt_tokens)
            gw.metrics.tokens.labels("out").inc(usage.completion_tokens)
            spent = usage.total_tokens
            prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
        else:
            spent = (self.charge.reserved or self.charge.estimate) if self.content_started else 0
            prompt_tokens, completion_tokens = (self.charge.estimate, max(0, spent - self.charge.estimate)) \
                if self.content_started else (0, 0)
        gw.usage.record(self.principal.id, self.model, prompt_tokens, completion_tokens)
        gw.metrics.count_user(self.principal.id, prompt_tokens, completion_tokens)
        try:
            await gw.quotas.settle(self.charge, spent)
        except Exception as exc:  # a Redis hiccup must not lose the log line
            gw.log_internal("settle failed: %s", type(exc).__name__)
        gw.access.write(
            prompt=self.req.messages, transport=self.transport, user=self.principal.user, auth=self.principal.via, model=self.model,
            stream=self.req.stream, status=self.status, error=self.error_code,
            ttft_ms=None if self.first_at is None else round((self.first_at - self.started) * 1000, 1),
            duration_ms=round(duration * 1000, 1),
            tokens_in=usage.prompt_tokens if usage else None, tokens_out=usage.completion_tokens if usage else None,
            finish_reason=self.finish_reason, id=self.req.id, upstream_id=self.upstream_id, upstream=self.upstream,
        )
