"""`GET /v1/ws`: the WebSocket protocol for browsers.

Client → gateway (JSON text frames)::

    {"type": "auth", "token": "ewk_…"}                 first message; never a token in the URL
    {"type": "chat", "mid": 7, "messages": [...], "model"?, "temperature"?, "max_tokens"?, …}
    {"type": "resume", "mid": 7, "seq": 41}            after reconnecting: everything after seq 41
    {"type": "stop", "mid": 7}
    {"type": "ping"}

Gateway → client::

    {"type": "ready", "user": "alice"}
    {"type": "delta", "mid": 7, "seq": 42, "text": "…"}   or "reasoning": "…"
    {"type": "safety", "mid": 7, "seq": 43, "flag": 1, …}
    {"type": "withdraw", "mid": 7, "seq": 44, "notice": "…"}  the content filter withdrew the answer
    {"type": "done", "mid": 7, "usage": {…}, "finish_reason": "stop"}
    {"type": "error", "mid": 7, "code": "rate_limit_exceeded", "message": "…", "status": 429, "retry_after": "3"}
    {"type": "pong"}
    {"type": "shutdown", "resume": [{"mid": 7, "seq": 41}], …}   then close 1012: reconnect and resume

Answers outlive their connection: a dropped client reconnects, authenticates and sends ``resume``
with the last ``seq`` it saw (see `resume`). A normal close (code 1000) or ``stop`` cancels at once.
A client that reads too slowly is disconnected (close code 4008); its answers stay resumable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from .admission import admit, authenticate
from .answer import AnswerRun
from .auth import Principal
from .errors import GatewayError, internal_error, shutdown_error
from .openai_wire import dumps, loads_bounded
from .resume import ReplayAnswer, resume_gap, resume_unavailable

if TYPE_CHECKING:
    from .state import Gateway

__all__ = ["websocket_endpoint"]

CLOSE_POLICY = 1008
CLOSE_RESTART = 1012  # service restart: reconnect (elsewhere) and resume
CLOSE_SLOW = 4008

_background: set[asyncio.Future[None]] = set()


async def websocket_endpoint(ws: WebSocket) -> None:
    await ws.accept()
    await WSConnection(ws, ws.app.state.gateway).serve()


def _valid_mid(mid: Any) -> bool:
    return (isinstance(mid, int) and not isinstance(mid, bool)) or (isinstance(mid, str) and 0 < len(mid) <= 128)


class WSConnection:
    """One browser connection: an authenticated reader loop and a writer fed by a bounded queue."""

    def __init__(self, ws: WebSocket, gw: Gateway) -> None:
        self.ws = ws
        self.gw = gw
        self.token: str | None = None
        self.principal: Principal | None = None
        self.answers: set[ReplayAnswer] = set()
        # answers other replicas run, relayed from the shared replay window: mid key → [mid, last seq, task]
        self._remote: dict[str, list[Any]] = {}
        self.closed = False
        self._out: deque[str] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._reader: asyncio.Task[Any] | None = None
        self._writer: asyncio.Task[None] | None = None

    # -- sending --------------------------------------------------------------------------------------

    def send(self, msg: dict[str, Any]) -> None:
        """Queue a message (never blocks). A backlog beyond the buffer disconnects the slow client."""
        if self.closed:
            return
        data = dumps(msg)
        if self._out and self._bytes + len(data) > self.gw.settings.stream_buffer_bytes:
            self._slow()
            return
        self._out.append(data)
        self._bytes += len(data)
        self._ready.set()

    async def _write_loop(self) -> None:
        timeout = self.gw.settings.send_timeout
        while True:
            while not self._out:
                self._ready.clear()
                await self._ready.wait()
            data = self._out.popleft()
            self._bytes -= len(data)
            try:
                async with asyncio.timeout(timeout):
                    await self.ws.send_text(data)
            except TimeoutError:  # one write blocked for send_timeout: the client stopped reading
                if not self.closed:
                    self._slow()
                return
            except (WebSocketDisconnect, RuntimeError, OSError):  # gone: the reader loop sees it too
                self.closed = True
                return

    def _slow(self) -> None:
        self.closed = True
        self._out.clear()
        self.gw.metrics.errors.labels("slow_consumer").inc()
        asyncio.get_running_loop().create_task(self._close(CLOSE_SLOW, "slow consumer: the send buffer is full"))

    async def _close(self, code: int, reason: str) -> None:
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.ws.close(code, reason)
        if self._reader is not None:
            self._reader.cancel()

    async def _flush_and_close(self, code: int, reason: str) -> None:
        deadline = time.monotonic() + 2
        while self._out and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.closed = True
        await self._close(code, reason)

    # -- the connection -------------------------------------------------------------------------------

    async def shut_down(self) -> None:
        """The server is going away: say which answers to resume where (``resume``: mid and last seq each),
        then close with 1012 — the same token, when it fits, in the close reason."""
        token = [{"mid": a.mid, "seq": a.last_seq} for a in self.answers]
        token += [{"mid": mid, "seq": seq} for mid, seq, _ in self._remote.values()]
        self.send({"type": "shutdown", "code": "server_shutdown", "resume": token,
                   "message": "网关正在关闭，请重连后续传 / the gateway is shutting down; reconnect and resume"})
        reason = "server_shutdown " + dumps({"resume": token})
        if len(reason.encode("utf-8")) > 123:  # a close reason holds at most 123 bytes
            reason = "server_shutdown"
        await self._flush_and_close(CLOSE_RESTART, reason)

    async def _receive(self) -> str:
        """The next message as text: a binary frame is read as UTF-8 (or as nothing, an invalid message) —
        never the KeyError of ``receive_text`` that dropped the connection without a close frame."""
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        text = message.get("text")
        if text is not None:
            return str(text)
        data = message.get("bytes") or b""
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            return ""

    async def serve(self) -> None:
        self._reader = asyncio.current_task()
        self._writer = asyncio.create_task(self._write_loop())
        self.gw.connections.add(self)
        close_code = 1006
        try:
            if not await self._authenticate():
                return
            while True:
                raw = await self._receive()
                try:
                    await self._dispatch(raw)
                except Exception as exc:  # a bug answers this message with an error; the connection lives on
                    err = internal_error(exc)
                    self.send({"type": "error", "code": err.code, "message": err.message, "status": err.status})
        except WebSocketDisconnect as exc:
            close_code = exc.code
        except asyncio.CancelledError:
            pass
        finally:
            self.gw.connections.discard(self)
            self.closed = True
            if self._writer is not None:
                self._writer.cancel()
            for answer in self.answers:
                answer.detach(self.send)
                if close_code == 1000 and answer.running:  # the client left on purpose: stop spending tokens
                    answer.stop_reason = "client_closed"
                    answer.cancel()
            for mid, _, task in list(self._remote.values()):
                task.cancel()
                if close_code == 1000:
                    stopping = asyncio.ensure_future(self._stop_remote(mid, "client_closed"))
                    _background.add(stopping)  # held until done: the loop keeps only weak references
                    stopping.add_done_callback(_background.discard)

    async def _authenticate(self) -> bool:
        try:
            async with asyncio.timeout(self.gw.settings.ws_first_message_timeout):
                raw = await self._receive()
        except TimeoutError:
            self.send({"type": "error", "code": "auth_timeout", "message": "没有认证消息 / no auth message"})
            await self._flush_and_close(CLOSE_POLICY, "auth timeout")
            return False
        msg = _loads(raw)
        started = time.monotonic()
        try:
            if not isinstance(msg, dict) or msg.get("type") != "auth":
                raise GatewayError(401, "第一条消息必须是认证 / the first message must be {\"type\": \"auth\", "
                                   "\"token\": …}", "auth_required")
            token = msg.get("token")
            self.principal = authenticate(self.gw, token if isinstance(token, str) else None)
            self.token = token if isinstance(token, str) else None
        except GatewayError as err:
            self.gw.reject("ws", err, started, None)
            self.send({"type": "error", "code": err.code, "message": err.message, "status": err.status})
            await self._flush_and_close(CLOSE_POLICY, err.code)
            return False
        self.send({"type": "ready", "user": self.principal.user})
        return True

    async def _dispatch(self, raw: str) -> None:
        try:
            msg = loads_bounded(raw)
        except GatewayError as err:  # not JSON, or nested too deep
            self.send({"type": "error", "code": "invalid_message", "message": err.message, "status": err.status})
            return
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "chat":
            await self._chat(msg)
        elif kind == "resume":
            self._resume(msg)
        elif kind == "stop":
            answer = self._answer(msg)
            if answer is not None:
                answer.stop_reason = "stopped"
                answer.cancel()
            elif self.gw.replay.shared and _valid_mid(msg.get("mid")):
                await self._stop_remote(msg.get("mid"), "stopped")
        elif kind == "ping":
            self.send({"type": "pong"})
        else:
            self.send({"type": "error", "code": "invalid_message",
                       "message": "未知消息 / expected a JSON object with type chat, resume, stop or ping"})

    def _answer(self, msg: dict[str, Any]) -> ReplayAnswer | None:
        assert self.principal is not None
        mid = msg.get("mid")
        return self.gw.replay.get(self.principal.id, mid) if _valid_mid(mid) else None

    def _error(self, mid: Any, err: GatewayError) -> None:
        out: dict[str, Any] = {"type": "error", "mid": mid, "code": err.code, "message": err.message,
                               "status": err.status}
        if err.retry_after is not None:
            out["retry_after"] = err.headers()["Retry-After"]
        self.send(out)

    async def _chat(self, msg: dict[str, Any]) -> None:
        gw = self.gw
        started = time.monotonic()
        gw.metrics.requests.labels("ws").inc()
        mid = msg.get("mid")
        principal = None
        try:
            if gw.draining:
                raise shutdown_error()
            if not _valid_mid(mid):
                raise GatewayError(400, "需要 mid（整数或字符串）/ 'mid' must be an integer or a short string",
                                   "invalid_mid")
            # re-checked per request: a key revoked or a token expired during a long connection stops here
            principal = authenticate(gw, self.token)
            existing = gw.replay.get(principal.id, mid)
            if (existing is not None and existing.running) or (
                    existing is None and gw.replay.shared and await gw.replay.running_elsewhere(principal.id, mid)):
                raise GatewayError(409, f"mid {mid!r} 正在进行 / an answer with this mid is running", "duplicate_mid")
            if sum(1 for a in self.answers if a.running) >= gw.settings.ws_max_inflight:
                raise GatewayError(429, "同时进行的回答过多 / too many answers in flight on this connection",
                                   "too_many_inflight", "rate_limit_error", 1)
            body = {k: v for k, v in msg.items() if k not in ("type", "mid", "stream", "stream_options")}
            body["stream"] = True
            req, charge = await admit(gw, principal, body)
        except GatewayError as err:
            gw.reject("ws", err, started, principal)
            self._error(mid, err)
            return
        answer = gw.replay.create(principal.id, mid)
        answer.attach(self.send)
        self.answers.add(answer)
        run = AnswerRun(gw, principal, req, "ws", charge, started)
        answer.task = asyncio.create_task(run.run(answer), name=f"gateway-ws-answer-{req.id}")
        answer.task.add_done_callback(lambda _t: answer.finalize(answer.stop_reason))

    def _resume(self, msg: dict[str, Any]) -> None:
        mid = msg.get("mid")
        seq = msg.get("seq")
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else 0
        answer = self._answer(msg)
        if answer is None:
            if self.gw.replay.shared and _valid_mid(mid):
                # not running here: another replica may run it, and the shared window has its messages
                self._follow(mid, seq)
                return
            self._error(mid, resume_unavailable())
            return
        missed = answer.since(seq)
        if missed is None:
            self._error(mid, resume_gap(seq))
            return
        for m in missed:
            self.send(m)
        if answer.terminal is None:
            answer.attach(self.send)
            self.answers.add(answer)

    def _follow(self, mid: Any, seq: int) -> None:
        """Relay an answer running on another replica, from ``seq`` on, until its terminal message."""
        assert self.principal is not None
        key = _mid_key(mid)
        previous = self._remote.pop(key, None)
        if previous is not None:
            previous[2].cancel()
        entry: list[Any] = [mid, seq, None]

        async def relay() -> None:
            assert self.principal is not None
            try:
                async for m in self.gw.replay.follow(self.principal.id, mid, seq):
                    if "seq" in m:
                        entry[1] = m["seq"]
                    self.send(m)
            except GatewayError as err:
                self._error(mid, err)
            except Exception as exc:  # Redis went away mid-follow: an error the client can act on, not silence
                self._error(mid, internal_error(exc))
            finally:
                if self._remote.get(key) is entry:
                    del self._remote[key]

        entry[2] = asyncio.create_task(relay(), name=f"gateway-ws-follow-{key}")
        self._remote[key] = entry

    async def _stop_remote(self, mid: Any, reason: str) -> None:
        assert self.principal is not None
        with contextlib.suppress(Exception):  # best effort: the answer ends anyway after --resume-grace
            await self.gw.replay.stop_remote(self.principal.id, mid, reason)


def _mid_key(mid: Any) -> str:
    return f"{type(mid).__name__}:{mid}"


def _loads(raw: str) -> Any:
    try:
        return loads_bounded(raw)
    except GatewayError:
        return None
