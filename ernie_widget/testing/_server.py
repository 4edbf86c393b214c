"""`ErnieSimulator`: a real HTTP/1.1 server speaking every ERNIE chat surface, on its own thread."""

from __future__ import annotations

import asyncio
import contextlib
import gzip as gziplib
import json
import secrets
import socket
import string
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from ._iam import IAM_TOKEN_PATH, IamAuthority
from ._records import RecordedRequest
from ._requested import shaped_by_request
from ._scripts import Answer, Fault
from ._surfaces import Context, Encoder, code_msg_body, dumps, encoder_for, message_text, pieces
from ._tools import tool_history_problem, v1_function_problem
from ._wire import BadRequest, ClientGone, Connection, Request, ResponseWriter, head_bytes

__all__ = ["CHAT_SURFACES", "ErnieSimulator"]

CHAT_SURFACES = ("qianfan", "qianfan-v1", "aistudio", "openai")

_V1_PREFIX = "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"
_CHAT_PATHS = {
    "/v2/chat/completions": "qianfan",
    "/llm/lmapi/v3/chat/completions": "aistudio",
    "/v1/chat/completions": "openai",
}
_MODEL_PATHS = ("/v1/models", "/llm/lmapi/v3/models", "/v2/models")
_BASE_PATHS = {"qianfan": "/v2", "qianfan-v1": "", "aistudio": "/llm/lmapi/v3", "openai": "/v1"}
_DEFAULT_MODEL = {"qianfan": "ernie-4.5-turbo-128k", "aistudio": "ernie-4.5-turbo-128k", "openai": "default"}
# Qianfan v2 non-stream responses carry these (docs/ernie-wire.md §1.6); the values are the mock's.
_RATELIMIT_HEADERS = [
    ("X-Ratelimit-Limit-Requests", "3000"),
    ("X-Ratelimit-Limit-Tokens", "300000"),
    ("X-Ratelimit-Remaining-Requests", "2999"),
    ("X-Ratelimit-Remaining-Tokens", "299000"),
]
_ALNUM = string.ascii_lowercase + string.digits
_JSON_TYPE = "application/json; charset=utf-8"
_CONTINUING_FAULTS = ("malformed", "oversized")


def _baidu_id() -> str:
    return "as-" + "".join(secrets.choice(_ALNUM) for _ in range(10))


def _route(path: str) -> str:
    if path in _CHAT_PATHS:
        return _CHAT_PATHS[path]
    if path.startswith(_V1_PREFIX) and len(path) > len(_V1_PREFIX):
        return "qianfan-v1"
    if path == "/oauth/2.0/token":
        return "oauth"
    if path == IAM_TOKEN_PATH:
        return "iam"
    if path in _MODEL_PATHS:
        return "models"
    return "unknown"


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _fmt_retry_after(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def echo_answer(last_user_text: str) -> str:
    """The deterministic default answer for a last user message."""
    return f"你好！You said: {last_user_text}"


class ErnieSimulator:
    """An ERNIE protocol simulator on 127.0.0.1 (ephemeral port) for tests, demos and benchmarks.

    Surfaces: Qianfan v2 (`/v2/chat/completions`), AI Studio (`/llm/lmapi/v3/chat/completions`),
    OpenAI-compatible (`/v1/chat/completions`, `GET /v1/models`), Qianfan v1 (`/oauth/2.0/token` and
    `/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/<endpoint>`). Script replies with `set_answer()` and
    `push(Answer(...), Fault...)`; inspect what arrived through `requests` / `chat_requests`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency: float = 0.0) -> None:
        self.host = host
        self.port = port
        self.latency = latency  # seconds before every chat response starts
        self._connections = 0  # TCP connections accepted so far
        self.models: list[str] = ["ernie-4.5-0.3b", "ernie-4.5-21b-a3b"]  # what GET /v1/models lists
        self.openai_api_key: str | None = None  # when set, /v1 requires `Authorization: Bearer <it>`
        self.in_flight = 0
        self.peak_in_flight = 0
        self._default = Answer()
        self._scripts: deque[Answer | Fault] = deque()
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._all: list[RecordedRequest] = []
        self._tokens: dict[str, bool] = {}  # issued v1 access token -> expired?
        self.iam = IamAuthority()  # IAM AK/SK → v2 bearer tokens: keys, issued tokens, expire_tokens()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> ErnieSimulator:
        """Start serving on a daemon thread with its own event loop; returns self."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run, args=(loop,), name="ernie-simulator", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop serving: open streams (stalled, endless) are closed at once."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._loop = self._thread = None

    def __enter__(self) -> ErnieSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- addresses ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        if self._thread is None:
            raise RuntimeError("simulator not started")
        return f"http://{self.host}:{self.port}"

    def base_url(self, provider: str) -> str:
        """The base URL a client for `provider` should use ("qianfan", "qianfan-v1", "aistudio", "openai")."""
        try:
            return self.url + _BASE_PATHS[provider]
        except KeyError:
            raise ValueError(
                f"unknown provider {provider!r}; expected one of {sorted(_BASE_PATHS)}"
            ) from None

    def env(self, provider: str, api_key: str | None = None, secret_key: str | None = None) -> dict[str, str]:
        """Environment variables that point the ernie_widget client at this simulator.

        For "qianfan-v1", `api_key`/`secret_key` are the OAuth AK/SK (a secret containing "bad" is rejected).
        "qianfan-iam": Qianfan v2 through an IAM key pair (QIANFAN_ACCESS_KEY/QIANFAN_SECRET_KEY, default the
        pair `self.iam` knows; any other secret fails the signature check).
        """
        if provider == "qianfan-iam":
            return self.iam.env(self.url, api_key, secret_key)
        base = self.base_url(provider)
        env = {"ERNIE_PROVIDER": provider}
        if provider == "qianfan":
            env |= {"QIANFAN_API_KEY": api_key or "bce-v3/ALTAK-test/secret", "QIANFAN_BASE_URL": base}
        elif provider == "qianfan-v1":
            env |= {
                "QIANFAN_AK": api_key or "sim-ak",
                "QIANFAN_SK": secret_key or "sim-sk",
                "QIANFAN_V1_BASE_URL": base,
            }
        elif provider == "aistudio":
            env |= {"AISTUDIO_ACCESS_TOKEN": api_key or "aistudio-test-token", "AISTUDIO_BASE_URL": base}
        else:
            env["ERNIE_BASE_URL"] = base
            if api_key:
                env["ERNIE_API_KEY"] = api_key
        return env

    # -- scripting ------------------------------------------------------------------------------------

    @property
    def default_answer(self) -> Answer:
        return self._default

    def set_answer(self, answer: Answer | None = None, /, **fields: Any) -> Answer:
        """Set the default reply for all later chat requests: an `Answer`, or `Answer` fields."""
        self._default = replace(answer, **fields) if answer is not None else Answer(**fields)
        return self._default

    def push(self, *scripts: Answer | Fault) -> None:
        """Queue one-shot replies, consumed FIFO by the next chat requests that pass auth and validation."""
        for script in scripts:
            if not isinstance(script, Answer | Fault):
                raise TypeError(f"expected Answer or Fault, got {type(script).__name__}")
        with self._lock:
            self._scripts.extend(scripts)

    @property
    def pending(self) -> int:
        """How many pushed scripts are still queued."""
        return len(self._scripts)

    def issue_token(self) -> str:
        """Issue a valid v1 access token (what `/oauth/2.0/token` returns)."""
        token = "24." + secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = False
        return token

    def expire_tokens(self) -> None:
        """Mark every issued v1 access token expired: their next use gets `error_code` 111."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = True

    # -- observing ------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Chat and OAuth requests, in arrival order (a snapshot list; the records stay live)."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if r.surface in CHAT_SURFACES]

    @property
    def all_requests(self) -> list[RecordedRequest]:
        """Every request, including `/v1/models` and unknown paths (404)."""
        with self._lock:
            return list(self._all)

    def clear(self) -> None:
        """Forget recorded requests and queued scripts; reset `peak_in_flight`."""
        with self._lock:
            self._requests.clear()
            self._all.clear()
            self._scripts.clear()
            self.peak_in_flight = self.in_flight

    @staticmethod
    def wait_for(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.005) -> bool:
        """Poll `predicate` until it is truthy; False if `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    # -- connection handling (event-loop thread) ---------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(reader, writer)
        self._connections += 1
        conn.number = self._connections
        try:
            while True:
                try:
                    req = await conn.read_request()
                except BadRequest as exc:
                    body = dumps(
                        {"error": {"code": 400, "message": str(exc), "type": "invalid_request_error"}}
                    )
                    data = body.encode()
                    await conn.write(
                        head_bytes(
                            400,
                            [
                                ("Content-Type", _JSON_TYPE),
                                ("Connection", "close"),
                                ("Content-Length", str(len(data))),
                            ],
                        )
                        + data
                    )
                    break
                if req is None:
                    break
                if not await self._handle(conn, req) or not req.keep_alive:
                    break
        except (ClientGone, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            # stop() cancels us. Finish normally: on 3.11 asyncio's stream callback calls
            # task.exception() on a cancelled connection task and logs a spurious traceback.
            pass
        finally:
            self._tasks.discard(task)
            conn.close()

    async def _handle(self, conn: Connection, req: Request) -> bool:
        """Serve one request; returns whether the connection may be reused."""
        surface = _route(req.path)
        body = _parse_json(req.body)
        rec = RecordedRequest(
            method=req.method,
            path=req.path,
            query=req.query,
            headers=req.headers,
            body=req.body,
            json=body,
            surface=surface,
            started=time.monotonic(),
            stream=bool(isinstance(body, dict) and body.get("stream")),
            connection=getattr(conn, "number", 0),
        )
        with self._lock:
            self._all.append(rec)
            if surface in CHAT_SURFACES or surface in ("oauth", "iam"):
                self._requests.append(rec)
        rid = req.headers.get("x-request-id") or _baidu_id()
        headers = [("Server", "ernie-simulator"), ("X-Request-Id", rid), ("X-Baidu-Request-Id", rid)]
        if not req.keep_alive:
            headers.append(("Connection", "close"))
        chat = surface in CHAT_SURFACES
        if chat:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        conn.begin_response(rec)
        try:
            if chat:
                return await self._chat(conn, req, rec, rid, headers)
            if surface == "oauth":
                return await self._oauth(conn, req, rec, headers)
            if surface == "iam":
                status, obj, extra = self.iam.respond(req, rid)
                await self._send(conn, rec, status, obj, [*headers, *extra])
                return True
            if surface == "models" and req.method == "GET":
                data = [
                    {"id": m, "object": "model", "created": 0, "owned_by": "ernie-simulator"}
                    for m in self.models
                ]
                await self._send(conn, rec, 200, {"object": "list", "data": data}, headers)
                return True
            err = {
                "error": {
                    "code": 404,
                    "message": f"no route for {req.method} {req.path}",
                    "type": "not_found_error",
                }
            }
            await self._send(conn, rec, 404, err, headers)
            return True
        except ClientGone:
            if not conn.response_complete:
                rec.disconnected = True
            raise
        finally:
            rec.finished = time.monotonic()
            if chat:
                self.in_flight -= 1
            await conn.end_response()

    async def _send(
        self,
        conn: Connection,
        rec: RecordedRequest,
        status: int,
        obj: Any,
        headers: list[tuple[str, str]],
        *,
        content_type: str = _JSON_TYPE,
        raw: bytes | None = None,
        gzip: bool = False,
        split_utf8: bool = False,
    ) -> None:
        """A whole (non-stream) response with Content-Length."""
        data = raw if raw is not None else dumps(obj).encode()
        rec.response_body = data
        headers = [*headers, ("Content-Type", content_type)]
        if gzip:
            data = gziplib.compress(data)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(data))))
        writer = ResponseWriter(conn, rec, chunked=False, split_utf8=split_utf8)
        await writer.start(status, headers)
        await writer.raw(data)
        await writer.finish()

    # -- OAuth (Qianfan v1) ---------------------------------------------------------------------------

    async def _oauth(
        self, conn: Connection, req: Request, rec: RecordedRequest, headers: list[tuple[str, str]]
    ) -> bool:
        if req.method not in ("GET", "POST"):
            await self._send(
                conn, rec, 405, {"error": "invalid_request", "error_description": "method"}, headers
            )
            return True
        params = dict(req.query)
        if "application/x-www-form-urlencoded" in req.headers.get("content-type", ""):
            params |= dict(parse_qsl(req.body.decode("utf-8", "replace")))
        # Always HTTP 200, as the mock does (docs/ernie-wire.md §9.2).
        if params.get("grant_type") != "client_credentials" or not params.get("client_id"):
            obj: dict[str, Any] = {"error_description": "unknown client id", "error": "invalid_client"}
        elif not params.get("client_secret") or "bad" in params["client_secret"]:
            obj = {"error_description": "Client authentication failed", "error": "invalid_client"}
        else:
            obj = {
                "refresh_token": "25." + secrets.token_hex(16),
                "expires_in": 2592000,
                "session_key": secrets.token_urlsafe(24),
                "access_token": self.issue_token(),
                "scope": "ai_custom_yiyan_com ai_custom_yiyan_com_eb_instant public",
                "session_secret": secrets.token_hex(16),
            }
        await self._send(conn, rec, 200, obj, headers)
        return True

    # -- chat -----------------------------------------------------------------------------------------

    def _context(self, rec: RecordedRequest, rid: str) -> Context:
        body = rec.json if isinstance(rec.json, dict) else {}
        messages = [m for m in rec.messages if isinstance(m, dict)]
        last_user = next(
            (message_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        system = body["system"] if isinstance(body.get("system"), str) else ""
        prompt_tokens = sum(len(message_text(m.get("content"))) for m in messages) + len(system)
        stream_options = body.get("stream_options")
        if rec.surface == "openai":  # FastDeploy: include_usage defaults to true once stream_options is sent
            include_usage = isinstance(stream_options, dict) and bool(
                stream_options.get("include_usage", True)
            )
            response_id = "chatcmpl-" + secrets.token_hex(12)
        else:
            include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
            response_id = rid if rid.startswith("as-") else _baidu_id()
        if rec.surface == "qianfan-v1":
            model = rec.path.rsplit("/", 1)[-1]
        else:
            model = str(body.get("model") or _DEFAULT_MODEL[rec.surface])
        return Context(
            rec.surface,
            response_id,
            int(time.time()),
            model,
            include_usage,
            prompt_tokens,
            echo_answer(last_user),
        )

    def _auth_error(self, rec: RecordedRequest, enc: Encoder) -> tuple[int, Any] | None:
        if rec.surface == "qianfan-v1":
            token = rec.query.get("access_token")
            if token:
                with self._lock:
                    expired = self._tokens.get(token)
                if expired is None:
                    return 200, enc.error_body(401)
                if expired:
                    return 200, enc.error_body(200, 111, "Access token expired")
                return None
            # IAM-signed requests are not verified, as in the mock (§9.2)
            if "x-bce-date" in rec.headers and rec.headers.get("authorization", "").startswith(
                "bce-auth-v1/"
            ):
                return None
            return 200, enc.error_body(401)
        scheme, _, key = rec.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if rec.surface == "qianfan" and scheme.lower() == "bearer":
            iam_state = self.iam.bearer_state(key)  # None: not a token minted here (an API key)
            if iam_state is not None:
                return None if iam_state == "valid" else (401, enc.error_body(401))  # invalid_iam_token
        if rec.surface == "openai":
            if self.openai_api_key is not None and (scheme.lower() != "bearer" or key != self.openai_api_key):
                return 401, enc.error_body(401)
            return None
        if scheme.lower() != "bearer" or not key or "bad" in key:
            return 401, enc.error_body(401)
        return None

    def _validation_error(self, rec: RecordedRequest, enc: Encoder) -> tuple[int, Any] | None:
        body = rec.json
        surface = rec.surface
        if not isinstance(body, dict):
            if surface == "qianfan-v1":
                return 200, enc.error_body(200, 336002, "Invalid JSON")
            if surface == "openai":
                return 400, enc.error_body(400, None, "Invalid JSON body")
            return 400, enc.error_body(400, "malformed_json", "Invalid Argument")
        messages = body.get("messages")
        if surface == "openai":
            if not isinstance(messages, list) or not messages:
                return 400, enc.error_body(400, None, "'messages' must be a non-empty list")
            problem = tool_history_problem(messages)
            return (400, enc.error_body(400, None, problem)) if problem else None
        temperature = body.get("temperature")
        if isinstance(temperature, (int, float)) and not 0 < temperature <= 1:  # ERNIE: (0, 1] (§5.7)
            refusal = f"temperature must be in (0, 1], got {temperature}"
            if surface == "qianfan-v1":
                return 200, enc.error_body(200, 336003, refusal)
            return 400, enc.error_body(400, "invalid_argument", refusal)
        if surface == "qianfan-v1":
            problem = _v1_message_problem(body)
            return (200, enc.error_body(200, 336003, problem)) if problem else None
        if not body.get("model"):
            return 400, enc.error_body(400, "invalid_model", "model is empty")
        if not isinstance(messages, list) or not messages:
            return 400, enc.error_body(400, "invalid_messages", "messages must not be empty")
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        if not message_text(last.get("content")).strip() and not isinstance(last.get("content"), list):
            return 400, enc.error_body(400, "invalid_messages", "the last message content must not be blank")
        problem = tool_history_problem(messages)
        return (400, enc.error_body(400, "invalid_messages", problem)) if problem else None

    def _next_script(self) -> Answer | Fault | None:
        with self._lock:
            return self._scripts.popleft() if self._scripts else None

    async def _chat(
        self, conn: Connection, req: Request, rec: RecordedRequest, rid: str, headers: list[tuple[str, str]]
    ) -> bool:
        if self.latency > 0:
            await conn.pause(self.latency)
        ctx = self._context(rec, rid)
        enc = encoder_for(ctx)
        if req.method != "POST":
            await self._send(conn, rec, 405, enc.error_body(405), headers)
            return True
        error = self._auth_error(rec, enc) or self._validation_error(rec, enc)
        if error is not None:
            status, obj = error
            # v1 answers a message-shape error with text/html, even for stream requests (mock, §9.2)
            html = rec.surface == "qianfan-v1" and obj.get("error_code") == 336003
            await self._send(
                conn, rec, status, obj, headers, content_type="text/html" if html else _JSON_TYPE
            )
            return True
        script = self._next_script()
        fault = script if isinstance(script, Fault) else None
        answer = (fault.answer if fault else script) or self._default
        assert isinstance(answer, Answer)
        answer = shaped_by_request(answer, rec.json, ctx.echo_text)  # thinking switches, response_format
        if answer.model:
            enc = encoder_for(replace(ctx, model=answer.model))
        if fault is not None and fault.kind in ("status", "error_in_200"):
            return await self._error_fault(conn, rec, enc, fault, headers)
        if rec.stream:
            return await self._stream(conn, rec, enc, answer, fault, headers)
        if fault is not None:
            return await self._plain_fault(conn, rec, enc, answer, fault, headers)
        if answer.delay > 0:
            # an unstreamed answer arrives once it is generated: as long as streaming its chunks would take
            await conn.pause(answer.delay * len(enc.stream_plan(answer, ended=True).chunks))
        extra = _RATELIMIT_HEADERS if rec.surface == "qianfan" else []
        gz = answer.gzip and "gzip" in rec.headers.get("accept-encoding", "").lower()
        await self._send(
            conn, rec, 200, enc.body(answer), [*headers, *extra], gzip=gz, split_utf8=answer.split_utf8
        )
        return True

    async def _error_fault(
        self,
        conn: Connection,
        rec: RecordedRequest,
        enc: Encoder,
        fault: Fault,
        headers: list[tuple[str, str]],
    ) -> bool:
        if fault.kind == "error_in_200":
            body = (
                code_msg_body(fault.code, fault.message)
                if fault.style == "code_msg"
                else enc.error_body(200, fault.code, fault.message)
            )
            await self._send(conn, rec, 200, body, headers)
            return True
        extra = list(fault.headers.items())
        if fault.retry_after is not None:
            extra.append(("Retry-After", _fmt_retry_after(fault.retry_after)))
        raw: bytes | None = None
        obj: Any = None
        if fault.body is None:
            obj = enc.error_body(fault.http_status)
        elif isinstance(fault.body, bytes):
            raw = fault.body
        elif isinstance(fault.body, str):
            raw = fault.body.encode()
        else:
            obj = fault.body
        await self._send(conn, rec, fault.http_status, obj, [*headers, *extra], raw=raw)
        return True

    async def _plain_fault(
        self,
        conn: Connection,
        rec: RecordedRequest,
        enc: Encoder,
        answer: Answer,
        fault: Fault,
        headers: list[tuple[str, str]],
    ) -> bool:
        """A stream fault on a non-stream request (see `Fault`)."""
        kind = fault.kind
        if kind == "error_midstream":
            await self._send(conn, rec, 200, enc.error_body(200, fault.code, fault.message), headers)
        elif kind == "malformed":
            await self._send(conn, rec, 200, None, headers, raw=b'{"choices": [')
        elif kind == "oversized":
            await self._send(conn, rec, 200, enc.body(replace(answer, text="x" * fault.size)), headers)
        elif kind == "no_end":
            await self._send(conn, rec, 200, enc.body(answer, ended=False), headers)
        elif kind == "cut":
            data = dumps(enc.body(answer)).encode()
            rec.response_body = data
            writer = ResponseWriter(conn, rec, chunked=False)
            await writer.start(
                200, [*headers, ("Content-Type", _JSON_TYPE), ("Content-Length", str(len(data)))]
            )
            await writer.raw(data[: len(data) // 2])
            self._cut(conn)
            return False
        else:  # stall / endless: say nothing until the time is up or the client gives up
            await conn.pause(fault.seconds if kind == "stall" else float("inf"))
            self._cut(conn)
            return False
        return True

    @staticmethod
    def _cut(conn: Connection) -> None:
        conn.response_complete = True  # the server ended it on purpose: not a client disconnect
        conn.close()

    async def _stream(
        self,
        conn: Connection,
        rec: RecordedRequest,
        enc: Encoder,
        answer: Answer,
        fault: Fault | None,
        headers: list[tuple[str, str]],
    ) -> bool:
        gz = answer.gzip and "gzip" in rec.headers.get("accept-encoding", "").lower()
        writer = ResponseWriter(
            conn,
            rec,
            gzip=gz,
            split_utf8=answer.split_utf8,
            crlf=answer.crlf,
            immediate=answer.delay > 0 or bool(answer.heartbeat),
        )
        await writer.start(
            200,
            [*headers, ("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache")],
        )
        # Chunks before a terminal fault must not look final (no finish_reason / is_end).
        plan = enc.stream_plan(answer, ended=fault is None or fault.kind in _CONTINUING_FAULTS)
        for payload in plan.lead:
            await writer.event(payload, trailing_space=plan.lead_trailing_space)
        fire_at = fault.after_chunks if fault is not None else -1
        heartbeat = bool(answer.heartbeat)
        delay = answer.delay
        for i, payload in enumerate(plan.chunks):
            if i == fire_at:
                assert fault is not None
                outcome = await self._stream_fault(conn, rec, writer, enc, answer, fault)
                if outcome is not None:
                    return outcome
            if heartbeat and i:
                await writer.line(": keep-alive")
            await writer.event(payload)
            rec.chunks_sent += 1
            if delay > 0:
                await conn.pause(delay)
        if fault is not None and fire_at >= len(plan.chunks):
            outcome = await self._stream_fault(conn, rec, writer, enc, answer, fault)
            if outcome is not None:
                return outcome
        for payload in plan.tail:
            await writer.event(payload)
        await writer.finish()
        return True

    async def _stream_fault(
        self,
        conn: Connection,
        rec: RecordedRequest,
        writer: ResponseWriter,
        enc: Encoder,
        answer: Answer,
        fault: Fault,
    ) -> bool | None:
        """Apply `fault` mid-stream. None: keep streaming; True/False: the response is over (reuse?)."""
        kind = fault.kind
        if kind == "malformed":
            await writer.event('{"choices": [')
            return None
        if kind == "oversized":
            await writer.event(enc.text_chunk("x" * fault.size, rec.chunks_sent))
            return None
        if kind == "error_midstream":
            for step, text in enc.midstream_error(fault.code, fault.message, fault.style):
                if step == "data":
                    await writer.event(text)
                else:
                    await writer.line(text)
            await writer.finish()
            return True
        if kind == "no_end":
            await writer.finish()
            return True
        if kind == "cut":
            await writer.flush()
            self._cut(conn)
            return False
        if kind == "stall":
            await writer.flush()
            deadline = time.monotonic() + fault.seconds
            while (left := deadline - time.monotonic()) > 0:
                await conn.pause(min(left, fault.heartbeat) if fault.heartbeat else left)
                if fault.heartbeat and deadline - time.monotonic() > 0:
                    await writer.line(": keep-alive")
                    await writer.flush()
            self._cut(conn)
            return False
        if kind == "endless":
            texts = pieces(enc.text_of(answer), answer.chunk_size) or ["…"]
            i = 0
            while True:  # ends with ClientGone (client left) or cancellation (simulator stopped)
                await writer.event(enc.text_chunk(texts[i % len(texts)], i))
                rec.chunks_sent += 1
                await writer.flush()
                await conn.pause(fault.interval)
                i += 1
        raise ValueError(f"unknown fault kind {kind!r}")


def _v1_message_problem(body: dict[str, Any]) -> str | None:
    """The 336003 message for a v1 `messages` list that breaks the shape rules (§5.1), else None."""
    if body.get("functions"):
        # the function-calling variant has its own rules (the mock skips the plain check too)
        return v1_function_problem(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "the messages can not be empty"
    if len(messages) % 2 == 0:
        return "the length of messages must be an odd number"
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role != ("user" if i % 2 == 0 else "assistant"):
            return f"invalid role in message {i}"
        if not message_text(message.get("content")).strip():
            return f"the content of message {i} can not be empty"
    return None
