"""MCP servers as tool sources: ``ErnieChat(mcp=[...])`` (the official ``mcp`` SDK, ``pip install 'ernie-widget[agent]'``).

`McpServer` names a server: a stdio command (``McpServer(command=["uvx", "mcp-server-time"], env={...})``) or a
streamable HTTP endpoint (``McpServer(url="http://127.0.0.1:8000/mcp", headers={...})``); a string is taken as a
URL when it starts with ``http://`` or ``https://``, else as a command line (split like a shell would).

`McpTools` holds one chat's servers:

- Lazily started: the first turn that needs tools starts them all (`McpTools.start`, awaited on the chat's private
  loop, bounded by `START_TIMEOUT`); a server that fails is reported to the user as a notice and tried again on the
  next turn. Their tools join the turn's tool list as `Tool`\\ s whose function calls the server.
- Where they run: every MCP session lives in a task of its own on the private loop (anyio's task groups and cancel
  scopes must be entered and left in one task, so the task that opens a session is the one that closes it); tool
  calls are awaited there too. MCP calls are requests to another process, not user code: nothing of them runs on
  the kernel's main thread, and the kernel stays free while a server works.
- Untrusted: a server's tool names, descriptions, schemas, annotations and results are the server's word. Names
  are made valid and unique (``<server>__<tool>`` when the bare name is taken); descriptions and schemas are
  bounded; annotations (``readOnlyHint``…) are ignored: an MCP tool always asks (the approval rules are in
  turn.py). Results become text (images kept as PNG/JPEG data URLs) and take the same redaction and size bounds
  as every tool result.
- The environment of a stdio server: exactly ``env`` plus what the SDK passes to start any process
  (``HOME``, ``LOGNAME``, ``PATH``, ``SHELL``, ``TERM``, ``USER``: ``mcp.client.stdio.DEFAULT_INHERITED_ENV_VARS``),
  never the kernel's whole ``os.environ``, which holds the ERNIE key. Its stderr goes to a temporary file, quoted
  (redacted) when it fails to start.
- Stopped with the chat (`McpTools.close`, from ``ErnieChat.close()``): each session task leaves its context, which
  closes the server's stdin, waits for it to exit and kills it otherwise (the SDK's shutdown sequence). The SDK
  starts a stdio server in a session of its own, so the kernel's interrupt (a SIGINT to the kernel's process group)
  does not reach it; a kernel that exits without ``close()`` closes the server's stdin, which ends a well-behaved
  server.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import importlib.util
import json
import logging
import re
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client.background import in_background_loop, submit
from ..client.errors import ErnieError
from ..client.redact import redact
from ..client.tools import Tool
from .chat_tools import ToolText

__all__ = ["START_TIMEOUT", "McpServer", "McpToolError", "McpTools", "as_server"]

logger = logging.getLogger(__name__)

#: how long a turn waits for a server to start and list its tools (``uvx``/``npx`` may download it first)
START_TIMEOUT = 60.0
#: how long `McpTools.close` waits for the servers to stop (the SDK's own shutdown is bounded by ~6 s)
STOP_WAIT = 8.0
#: a server's tools beyond this many are left out (each costs request tokens)
MAX_TOOLS = 64
MAX_DESCRIPTION = 2_000
#: characters of a tool's JSON Schema; a larger one is left out (it would crowd the request)
MAX_SCHEMA = 16_000
#: images kept per result, and the size of each (base64 characters)
MAX_IMAGES = 4
MAX_IMAGE_CHARS = 2_800_000
#: characters of a failed server's stderr quoted to the user
STDERR_TAIL = 1_500
_IMAGE_MIMES = ("image/png", "image/jpeg")
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
INSTALL_HINT = ("MCP 需要官方 mcp SDK / MCP servers need the official mcp SDK: pip install 'ernie-widget[agent]' "
                "(or pip install 'mcp>=2')")


class McpToolError(Exception):
    """An MCP tool reported an error (``isError``): its text is what the model reads."""


@dataclass(frozen=True)
class McpServer:
    """One MCP server: ``command`` (stdio: argv, started in ``cwd`` with only ``env`` plus the SDK's minimal
    variables) or ``url`` (streamable HTTP, sent ``headers``). ``name`` prefixes its tool names when they clash."""

    command: Sequence[str] | None = None
    url: str | None = None
    env: Mapping[str, str] | None = field(default=None, repr=False)  # may hold the server's own secrets
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    cwd: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ErnieError("MCP 服务器需要 command 或 url 之一 / an MCP server is either command=[...] (stdio) or "
                             "url='http(s)://…/mcp' (streamable HTTP)")
        if self.command is not None:
            if isinstance(self.command, str) or not self.command or not all(
                    isinstance(a, str) and a for a in self.command):
                raise ErnieError("MCP command 是非空的参数列表 / an MCP command is a non-empty list of arguments, e.g. "
                                 "['uvx', 'mcp-server-time'] (a string is split with McpServer.parse)")
            if self.headers:
                raise ErnieError("headers 只用于 url 服务器 / headers= is for url servers; a stdio server takes env=")
        if self.url is not None:
            if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
                raise ErnieError(f"MCP url 必须以 http:// 或 https:// 开头 / an MCP url starts with http:// or "
                                 f"https://, got {str(self.url)[:80]!r}")
            if self.env or self.cwd:
                raise ErnieError("env/cwd 只用于 stdio 服务器 / env= and cwd= are for command servers")
        for what, mapping in (("env", self.env), ("headers", self.headers)):
            if mapping is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
                raise ErnieError(f"MCP {what} 的键和值必须是字符串 / MCP {what}= maps strings to strings")

    @property
    def label(self) -> str:
        """The server's name in tool names and messages: ``name``, else the command's or the URL host's."""
        if self.name:
            return self.name
        if self.command is not None:
            words = [a for a in self.command if not a.startswith("-")]
            base = (words[-1] if words else self.command[0]).replace("\\", "/").rsplit("/", 1)[-1]
            return base.removesuffix(".py") or "mcp"
        from urllib.parse import urlsplit

        return urlsplit(self.url or "").hostname or "mcp"

    @classmethod
    def parse(cls, text: str) -> McpServer:
        """``"http(s)://…"`` is a URL; anything else a command line, split like a POSIX shell would."""
        text = text.strip()
        if text.startswith(("http://", "https://")):
            return cls(url=text)
        return cls(command=shlex.split(text))


def as_server(obj: Any) -> McpServer:
    """An `McpServer` from one, a string (URL or command line) or a list of arguments."""
    if isinstance(obj, McpServer):
        return obj
    if isinstance(obj, str):
        return McpServer.parse(obj)
    if isinstance(obj, Sequence) and not isinstance(obj, bytes):
        return McpServer(command=list(obj))
    raise ErnieError(f"无法作为 MCP 服务器 / an MCP server is McpServer(...), a URL, a command line or an argument "
                     f"list, not {type(obj).__name__}")


def require_sdk() -> None:
    """Raise an actionable error when the ``mcp`` SDK is not installed."""
    if importlib.util.find_spec("mcp") is None:
        raise ErnieError(INSTALL_HINT)


class _Session:
    """One server's session, held open by a task of its own on the private loop."""

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self.client: Any = None  # mcp.Client while open
        self.tools: list[Tool] = []
        self._task: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        self._stderr: Any = None

    @property
    def open(self) -> bool:
        return self.client is not None and self._task is not None and not self._task.done()

    async def start(self, timeout: float) -> list[Any]:
        """Open the session and list the server's tools (the SDK's ``Tool`` objects)."""
        self._close_stderr()  # a failed earlier start's
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[list[Any]] = loop.create_future()
        self._closing = asyncio.Event()
        self._task = loop.create_task(self._hold(ready, self._closing), name=f"mcp:{self.server.label}")
        try:
            return await asyncio.wait_for(asyncio.shield(ready), timeout)
        except BaseException:
            await self.aclose(keep_stderr=True)  # read for the failure notice
            raise

    async def _hold(self, ready: asyncio.Future[list[Any]], closing: asyncio.Event) -> None:
        from mcp import Client

        client: Any = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                target = await self._target(stack)
                client = await stack.enter_async_context(Client(target))
                listed = await _list_tools(client)
                self.client = client
                if not ready.done():
                    ready.set_result(listed)
                await closing.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            elif not isinstance(exc, asyncio.CancelledError):
                logger.debug("MCP server %s ended", self.server.label, exc_info=True)
        finally:
            if self.client is client:  # not a newer session's (a dead server's task may end after its restart)
                self.client = None  # stderr stays readable for the failure notice; closed by the next start or aclose

    async def _target(self, stack: contextlib.AsyncExitStack) -> Any:
        server = self.server
        if server.url is not None:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            # the SDK's own defaults (30 s to connect, 300 s to read a held stream), with the user's headers
            http = await stack.enter_async_context(httpx2.AsyncClient(
                headers=dict(server.headers or {}), timeout=httpx2.Timeout(30.0, read=300.0)))
            return streamable_http_client(server.url, http_client=http)
        from mcp.client.stdio import StdioServerParameters, stdio_client

        assert server.command is not None
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 - outlives this call (read after a failed start)
        params = StdioServerParameters(command=server.command[0], args=list(server.command[1:]),
                                       env=dict(server.env or {}), cwd=server.cwd)
        return stdio_client(params, errlog=self._stderr)

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr_tail(self) -> str:
        err = self._stderr
        if err is None:
            return ""
        try:
            err.flush()
            err.seek(0)
            text = err.read()
        except (OSError, ValueError):
            return ""
        return redact(text[-STDERR_TAIL:].strip())

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolText:
        client = self.client
        if client is None:
            raise McpToolError(f"MCP 服务器 {self.server.label} 已停止 / the MCP server {self.server.label} is not "
                               "running")
        try:
            result = await client.call_tool(name, arguments)
        except Exception as exc:
            if _connection_closed(exc):  # the server died: end the session, the next turn starts it again
                self.client = None
                if self._closing is not None:
                    self._closing.set()
            raise
        text, images = _result_text(result)
        if getattr(result, "is_error", False):
            raise McpToolError(text)
        return ToolText(text, images)

    async def aclose(self, keep_stderr: bool = False) -> None:
        task, closing = self._task, self._closing
        if closing is not None:
            closing.set()
        if task is not None and not task.done() and self.client is None:
            # still starting (a timeout, Stop): it would never reach `closing`. Not awaited: the SDK's shielded
            # shutdown (stdin closed, 2 s, then SIGTERM) reaps the process in the background, and Stop is not held up
            task.cancel()
        elif task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_WAIT)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:  # the session's own failure, already logged
                pass
        if not keep_stderr:
            self._close_stderr()


class McpTools:
    """The MCP servers of one chat and the tools they provide (see the module docstring)."""

    def __init__(self, servers: Sequence[Any], *, start_timeout: float | None = None) -> None:
        require_sdk()
        self.servers = [as_server(s) for s in servers]
        self._sessions = [_Session(s) for s in self.servers]
        self._start_timeout = start_timeout
        self._lock: asyncio.Lock | None = None
        self._closed = False
        #: exposed tool name → (its session, the server's own name for it)
        self._owner: dict[str, tuple[_Session, str]] = {}

    @property
    def tools(self) -> list[Tool]:
        """The tools of the servers running now."""
        return [t for s in self._sessions if s.open for t in s.tools]

    def owns(self, name: str) -> bool:
        """Whether ``name`` is an MCP tool (of a server started in this chat)."""
        return name in self._owner

    async def start(self, taken: Sequence[str]) -> list[str]:
        """On the private loop: start the servers not running yet (all at once); their tools' names avoid
        ``taken``. Returns a notice per server that failed (bilingual, redacted)."""
        if self._closed:
            return []
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            todo = [s for s in self._sessions if not s.open]
            if not todo:
                return []
            timeout = self._start_timeout if self._start_timeout is not None else START_TIMEOUT
            outcomes = await asyncio.gather(*(s.start(timeout) for s in todo), return_exceptions=True)
            notices = []
            for session, outcome in zip(todo, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    if isinstance(outcome, asyncio.CancelledError):
                        raise outcome
                    notices.append(self._failure(session, outcome))
                    continue
                session.tools = self._adopt(session, outcome, taken)
            if self._closed:  # closed while they started: stop them again
                await self.aclose()
            return notices

    def _failure(self, session: _Session, exc: BaseException) -> str:
        what = "超时 / timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, BaseExceptionGroup):
            what = "; ".join(f"{type(e).__name__}: {e}" for e in exc.exceptions[:3])
        tail = session.stderr_tail()
        return redact(f"MCP 服务器 {session.server.label} 无法启动，它的工具本轮不可用 / the MCP server "
                      f"{session.server.label} did not start ({what[:500]}); its tools are not available in this "
                      "turn" + (f"\n{tail}" if tail else ""))

    def _adopt(self, session: _Session, listed: list[Any], taken: Sequence[str]) -> list[Tool]:
        """The server's tools as `Tool`s: valid, unique names; bounded descriptions and schemas."""
        for name in [n for n, (s, _) in self._owner.items() if s is session]:
            del self._owner[name]  # a restarted server lists its tools again
        used = set(taken) | set(self._owner)
        made: list[Tool] = []
        for listed_tool in listed[:MAX_TOOLS]:
            remote = str(getattr(listed_tool, "name", "") or "")
            schema = getattr(listed_tool, "input_schema", None) or {"type": "object", "properties": {}}
            if not remote or not isinstance(schema, Mapping) or len(json.dumps(schema, default=str)) > MAX_SCHEMA:
                continue
            name = _unique(remote, session.server.label, used)
            used.add(name)
            description = redact(str(getattr(listed_tool, "description", "") or ""))[:MAX_DESCRIPTION]
            label = session.server.label
            made.append(Tool(name, f"[MCP: {label}] {description}".strip(), dict(schema),
                             _caller(session, remote)))
            self._owner[name] = (session, remote)
        return made

    async def aclose(self) -> None:
        self._closed = True
        await asyncio.gather(*(s.aclose() for s in self._sessions), return_exceptions=True)
        self._owner.clear()

    def close(self, wait: float | None = STOP_WAIT + 1.0) -> None:
        """Stop every server (from any thread; ``ErnieChat.close()``). Waits up to ``wait`` s unless called on the
        private loop's thread, where it only schedules the stop."""
        self._closed = True
        if not any(s._task is not None for s in self._sessions):
            return
        future = submit(self.aclose())
        if wait and not in_background_loop():
            with contextlib.suppress(concurrent.futures.TimeoutError, Exception):
                future.result(wait)


def _caller(session: _Session, remote: str) -> Any:
    async def call_mcp_tool(**arguments: Any) -> ToolText:
        return await session.call(remote, arguments)

    return call_mcp_tool


def _unique(remote: str, server: str, used: set[str]) -> str:
    """``remote`` when it is a valid tool name nobody uses; else ``<server>__<tool>`` (cut to 64, numbered)."""
    clean = _BAD_NAME_CHARS.sub("_", remote).strip("_") or "tool"
    if clean == remote and len(remote) <= 64 and remote not in used:
        return remote
    base = f"{_BAD_NAME_CHARS.sub('_', server).strip('_') or 'mcp'}__{clean}"[:64]
    name, n = base, 2
    while name in used:
        suffix = f"_{n}"
        name, n = base[:64 - len(suffix)] + suffix, n + 1
    return name


async def _list_tools(client: Any) -> list[Any]:
    """Every page of ``tools/list`` (bounded: a server that pages forever stops at `MAX_TOOLS`)."""
    found: list[Any] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        found.extend(page.tools)
        cursor = page.next_cursor
        if not cursor or len(found) >= MAX_TOOLS:
            return found


def _result_text(result: Any) -> tuple[str, list[str]]:
    """A ``CallToolResult`` as text and image data URLs (PNG/JPEG only, bounded, checked as base64)."""
    parts: list[str] = []
    images: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(str(block.text))
        elif kind == "image":
            mime = str(getattr(block, "mime_type", ""))
            data = str(getattr(block, "data", ""))
            if mime in _IMAGE_MIMES and len(images) < MAX_IMAGES and len(data) <= MAX_IMAGE_CHARS and _is_base64(data):
                images.append(f"data:{mime};base64,{data}")
                parts.append(f"<image: {mime}, shown to the user>")
            else:
                parts.append(f"<image: {mime[:40]}, {len(data)} base64 characters, not kept>")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            uri = str(getattr(resource, "uri", ""))[:300]
            parts.append(f"<resource {uri}>\n{text}" if isinstance(text, str) else f"<resource {uri}: binary>")
        elif kind == "resource_link":
            parts.append(f"<resource link: {str(getattr(block, 'uri', ''))[:300]}>")
        else:
            parts.append(f"<{str(kind)[:40]} content, not shown>")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False, default=str))
    return "\n".join(parts), images


def _connection_closed(exc: BaseException) -> bool:
    """Whether ``exc`` says the session's connection is gone (the SDK's ``CONNECTION_CLOSED`` error)."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED

    error = getattr(exc, "error", None)
    return isinstance(exc, MCPError) and getattr(error, "code", None) == CONNECTION_CLOSED


def _is_base64(data: str) -> bool:
    try:
        base64.b64decode(data, validate=True)
    except ValueError:
        return False
    return True
