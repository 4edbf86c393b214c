"""Agent mode of ErnieChat: one turn as a tool loop, its steps announced to the views, its calls approved.

`ChatTools` belongs to one chat. Its `events` runs ``AsyncErnie.stream_tools`` on the chat's private loop and yields
the same ``(kind, value)`` pairs as a plain answer (text, reasoning, safety, sources, the final reply), while it:

- asks before every call that is not read-only (`approve` waits in `Approvals` for ``chat.approve()``, a view's
  ``approve`` message, or runs at once with ``auto_approve``; `ChatTools.asks` has the rules, MCP tools included)
  and announces each step as a ``tool_step`` message
  (waiting → running → done / failed / skipped; protocol.py);
- redacts every tool result in the history before the next request sends it (user tools' results, errors and
  run_python's text alike — the model never reads a key-shaped string from a tool), and appends the figures a
  round made as image parts in a user message after its tool messages, for vision models;
- starts the chat's MCP servers on its first turn (`McpTools`, mcp_tools.py) and offers their tools too;
- records what the turn stored (``Turn.transcript``: each round's assistant ``tool_calls`` message and one ``tool``
  message per call, with the step's status, code and hash), and where the final answer's own text starts.

Stop cancels the turn's task: a waiting approval is cancelled, a running tool interrupted (`ChatExecutor`; a tool
interrupted by the kernel's own interrupt ends the turn the same way), and the steps that did not finish are
stored as skipped or failed, each with a ``tool`` message, so the history the next turn sends stays a valid tool
history.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from ..client.errors import ErnieError
from ..client.events import ToolCall, ToolResult
from ..client.redact import redact
from ..client.tool_runner import Decision as RunDecision
from ..client.tools import Tool, as_tool
from ..conversations import TOOL_FIGURES
from ..main_thread import MainThreadRunner
from ..protocol import StoredMessage, ToolStepStatus
from ..turns import Turn, chat_pair
from .approvals import Approvals, sha256_of
from .chat_tools import (
    BUILTIN_NAMES,
    NO_EXTENSION,
    Builtin,
    ChatExecutor,
    ToolText,
    builtin_tools,
    shown_text,
)

if TYPE_CHECKING:
    from .mcp_tools import McpTools

__all__ = ["MAX_TOOL_ROUNDS", "NOT_RUN", "TOOL_TIMEOUT", "ChatTools"]

MAX_TOOL_ROUNDS = 8
INSERT_CELL = "insert_cell"
TOOL_TIMEOUT = 60.0
#: the tool message of a call the turn ended before running
NOT_RUN = "未运行：回答已停止 / not run: the answer was stopped"
STOPPED = "已停止 / stopped by the user"

_STATUS: dict[str, ToolStepStatus] = {"ok": "done", "denied": "skipped", "error": "failed", "invalid": "failed"}


class ChatTools:
    """The tools of one chat and the state of its tool loop (see the module docstring)."""

    def __init__(self, *, builtins: bool, tools: Sequence[Any], shell: Any, runner: MainThreadRunner,
                 vision: Callable[[], bool], emit: Callable[[dict[str, Any]], None],
                 auto_approve: Callable[[], bool], max_rounds: int = MAX_TOOL_ROUNDS,
                 tool_timeout: float | None = TOOL_TIMEOUT, mcp: Sequence[Any] = (),
                 auto_approve_tools: Callable[[], Collection[str]] = tuple) -> None:
        if builtins and shell is None:
            raise ErnieError("agent=True 需要 IPython 内核 / agent=True needs an IPython kernel (its namespace is where "
                             "run_python runs); tools=[...] works anywhere")
        self._builtins: list[Builtin] = builtin_tools(shell, vision) if builtins else []
        self._read_only = {b.tool.name for b in self._builtins if b.read_only}
        self._tools: list[Tool] = [b.tool for b in self._builtins]
        self._vision = vision
        self._emit = emit
        self._auto_approve = auto_approve
        self._auto_tools = auto_approve_tools
        self.mcp: McpTools | None = None
        if mcp:
            from .mcp_tools import McpTools

            self.mcp = McpTools(mcp)
        self.max_rounds = max_rounds
        self.tool_timeout = tool_timeout
        self.approvals = Approvals()
        self.executor = ChatExecutor(runner, self._builtins)
        for t in tools:
            self.add(t)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self._tools]

    def add(self, obj: Any) -> Tool:
        """Add a user tool (a function, a `Tool` or an OpenAI-style dict); its name must be new."""
        made = as_tool(obj)
        if made.name in self.names or (self.mcp is not None and self.mcp.owns(made.name)):
            why = "a built-in tool's name" if made.name in BUILTIN_NAMES else "already used"
            raise ValueError(f"工具名重复 / the tool name {made.name!r} is {why}")
        self._tools.append(made)
        return made

    def decide(self, call_id: str | None, choice: str, code: str | None = None, sha256: str | None = None) -> None:
        """From Python (``chat.approve()``/``chat.deny()``): release the waiting call, or raise why not."""
        pending = self.approvals.pending
        if choice != "skip" and pending is not None and pending.name == INSERT_CELL and call_id in (None, pending.call_id):
            raise ErnieError("insert_cell 需要在聊天中点击“插入” / insert_cell needs the Insert click in the chat (the "
                             "JupyterLab extension inserts the cell); chat.deny() skips it")
        problem = self.approvals.decide(call_id, choice, sha256=sha256, code=code, require_hash=False)
        if problem:
            raise ErnieError(problem)

    def on_view_approve(self, content: dict[str, Any]) -> str | None:
        """A view's ``approve`` message: None when it released the waiting call, else why it ran nothing."""
        call_id, sha = content.get("call_id"), content.get("sha256")
        code = content.get("code")
        if not isinstance(call_id, str) or not isinstance(sha, str) or (code is not None and not isinstance(code, str)):
            return "无效的批准 / an approval names the call_id and the sha256 of the code shown: nothing was run"
        decision = str(content.get("decision", ""))
        pending = self.approvals.pending
        if decision == "edit" and pending is not None and pending.name == INSERT_CELL:
            return "insert_cell 不能编辑 / insert_cell is inserted as shown: edit the cell once it is in the notebook"
        reason = content.get("reason")
        return self.approvals.decide(call_id, decision, sha256=sha, code=code,
                                     reason=reason if isinstance(reason, str) else None)

    def asks(self, name: str) -> bool:
        """Whether a call to ``name`` waits for the user: read-only built-ins and the names Python listed in
        ``auto_approve_tools`` never do; MCP tools always do otherwise (their annotations are the server's word, and
        ``auto_approve`` does not cover them); insert_cell always does (only a click inserts); any other tool unless
        ``auto_approve``."""
        if name == INSERT_CELL and any(b.tool.name == INSERT_CELL for b in self._builtins):
            return True  # only the user's click on Insert inserts a cell: auto-approval cannot
        if name in self._read_only or name in self._auto_tools():
            return False
        if self.mcp is not None and self.mcp.owns(name):
            return True
        return not self._auto_approve()

    def close(self) -> None:
        """The chat closed: its MCP servers stop."""
        if self.mcp is not None:
            self.mcp.close()

    @property
    def running(self) -> bool:
        """A tool of this chat runs now."""
        return self.executor.running > 0

    async def events(self, aio: Any, history: list[dict[str, Any]], turn: Turn, **params: Any
                     ) -> AsyncIterator[tuple[str, Any]]:
        """The turn's ``(kind, value)`` pairs (module docstring); ``params`` go to every request."""
        run = _Run(self, turn)
        self.executor.interrupted = False
        tools = list(self._tools)
        if self.mcp is not None:  # started by the first turn; a server that failed is tried again next turn
            for notice in await self.mcp.start(self.names):
                yield "notice", notice
            tools += self.mcp.tools
        if not tools:
            raise ErnieError("没有可用的工具 / no tool is available: every MCP server of this chat failed to start")
        stream = aio.stream_tools(history, tools, max_rounds=self.max_rounds, approve=run.approve,
                                  executor=self.executor, tool_timeout=self.tool_timeout, **params)
        run.messages = stream.messages
        try:
            async for ev in stream:
                if (pair := chat_pair(ev)) is not None:
                    yield pair
                elif ev.type == "tool_result" and ev.tool_result is not None:
                    run.result(ev.tool_result)
            done = stream.run
            if done is not None and done.stop_reason == "max_rounds":
                yield "notice", (f"已达到工具调用轮数上限 {self.max_rounds} / the model still asked for tools after "
                                 f"max_tool_rounds={self.max_rounds} rounds: those calls were not run")
            yield "reply", done.reply if done is not None else None
        finally:
            self.approvals.cancel()
            run.finish()
            try:
                await stream.aclose()
            except Exception:  # the loop ended with an error the turn already reports
                pass


class _Run:
    """One turn's bookkeeping (on the private loop)."""

    def __init__(self, tools: ChatTools, turn: Turn) -> None:
        self.tools = tools
        self.turn = turn
        self.messages: list[dict[str, Any]] = []
        self._round_at = -1  # index in `messages` of the current round's assistant message
        self._round_calls: tuple[str, ...] = ()
        self._round_results = 0
        self._round_images: list[str] = []
        self._edited: dict[str, str] = {}  # step id → the code the user ran instead
        self._outcome: dict[str, str] = {}  # step id → what the model reads instead of the denial (insert_cell)
        self._rounds: list[tuple[StoredMessage, int]] = []  # each round's assistant message and number

    # -- rounds -----------------------------------------------------------------------------------------------

    def _begin_round(self) -> None:
        """Record the round's assistant message (its text and calls) the first time one of its calls shows up."""
        at = max((i for i, m in enumerate(self.messages) if m.get("role") == "assistant"), default=-1)
        if at < 0 or at == self._round_at:
            return
        self._round_at = at
        message = self.messages[at]
        calls = list(message.get("tool_calls") or [])
        self._round_calls = tuple(str(c.get("id")) for c in calls)
        self._round_results = 0
        self._round_images = []
        stored: StoredMessage = {"role": "assistant", "content": str(message.get("content") or ""),
                                 "mid": self.turn.mid, "tool_calls": calls}
        self.turn.transcript.append(stored)
        self._rounds.append((stored, len(self._rounds) + 1))
        self.turn.text_start = sum(len(t) for t in self.turn.batcher.text)  # the answer's own text starts later

    def key(self, call_id: str, round_no: int | None = None) -> str:
        """The step's id on the wire (``call_id``): unique per turn and across turns, since a server may number
        its calls per answer: ``<mid>.<round>.<the model's call id>``."""
        return f"{self.turn.mid}.{round_no if round_no is not None else len(self._rounds)}.{call_id}"

    def _step(self, call: ToolCall, status: ToolStepStatus, code: str, **extra: Any) -> None:
        msg: dict[str, Any] = {"type": "tool_step", "mid": self.turn.mid, "call_id": self.key(call.id), "name": call.name,
                               "code_or_arguments": code, "sha256": sha256_of(code), "status": status,
                               "read_only": call.name in self.tools._read_only, **extra}
        self.turn.steps[msg["call_id"]] = msg
        self.tools._emit(msg)

    # -- run_tools' hooks ------------------------------------------------------------------------------------

    async def approve(self, call: ToolCall) -> RunDecision:
        self._begin_round()
        code, is_python = shown_text(call)
        if not self.tools.asks(call.name):
            self._step(call, "running", code)
            return True
        decision = await self.tools.approvals.wait(self.key(call.id), call.name, code, code_is_python=is_python,
                                                   announce=lambda: self._step(call, "waiting", code))
        if decision.choice == "skip":
            if decision.reason == "no_extension":
                self._outcome[self.key(call.id)] = NO_EXTENSION
            return False
        if decision.choice == "edit" and decision.code is not None:
            self._edited[self.key(call.id)] = decision.code
            self._step(call, "running", decision.code, edited=True)
            return {"code": decision.code} if is_python else json.loads(decision.code)
        self._step(call, "running", code)
        return True

    def result(self, result: ToolResult) -> None:
        """A call ended (ran, failed, was skipped or refused): redact what the model reads, announce, record."""
        self._begin_round()
        call = result.call
        edited = self._edited.get(self.key(call.id))
        text = redact(self._outcome.get(self.key(call.id), result.content))
        if edited is not None:
            text = f"[用户修改了代码后运行 / the user edited the code before running it:]\n{edited}\n[输出 / output:]\n{text}"
        if self.messages and self.messages[-1].get("tool_call_id") == call.id:
            self.messages[-1]["content"] = text  # the history the next request sends
        value = result.value
        images = list(value.images) if isinstance(value, ToolText) else []
        status = _STATUS.get(result.status, "failed")
        if status == "done" and isinstance(value, ToolText) and value.failed:
            status = "failed"
        code = edited if edited is not None else shown_text(call)[0]
        extra: dict[str, Any] = {"result": text}
        if images:
            extra["images"] = images
        if edited is not None:
            extra["edited"] = True
        self._step(call, status, code, **extra)
        self._store(call, text, status, code, images, edited is not None)
        if self.tools.executor.interrupted:  # the kernel's interrupt (■) ends the turn as Stop does
            self.turn.request_stop()
        self._round_results += 1
        self._round_images.extend(images)
        if self._round_results >= len(self._round_calls) and self._round_images and self.tools._vision():
            self.messages.append({"role": "user", "content": [
                {"type": "text", "text": TOOL_FIGURES},
                *({"type": "image_url", "image_url": {"url": u}} for u in self._round_images)]})
            for stored in self.turn.transcript[-self._round_results:]:
                if stored.get("images"):
                    stored["images_sent"] = True

    def _store(self, call: ToolCall, text: str, status: ToolStepStatus, code: str, images: list[str],
               edited: bool) -> None:
        stored: StoredMessage = {"role": "tool", "content": text, "mid": self.turn.mid, "tool_call_id": call.id,
                                 "name": call.name, "step_status": status, "code_or_arguments": code,
                                 "sha256": sha256_of(code)}
        if images:
            stored["images"] = images
        if edited:
            stored["edited"] = True
        self.turn.transcript.append(stored)

    def finish(self) -> None:
        """The turn ended (answered, stopped, failed): steps that did not finish end as skipped or failed, and
        every call of a recorded round has its tool message."""
        for step in list(self.turn.steps.values()):
            if step["status"] in ("waiting", "running"):
                status: ToolStepStatus = "skipped" if step["status"] == "waiting" else "failed"
                final = {**step, "status": status, "result": NOT_RUN if status == "skipped" else STOPPED}
                self.turn.steps[step["call_id"]] = final
                self.tools._emit(final)
        for asked, round_no in self._rounds:
            answered = {str(m.get("tool_call_id")) for m in self._results_of(asked)}
            for entry in asked.get("tool_calls") or []:
                call_id = str(entry.get("id"))
                if call_id in answered:
                    continue
                fn = entry.get("function") or {}
                seen = self.turn.steps.get(self.key(call_id, round_no))
                tool_msg: StoredMessage = {"role": "tool", "content": seen["result"] if seen else NOT_RUN,
                                           "mid": self.turn.mid, "tool_call_id": call_id,
                                           "name": str(fn.get("name", "")),
                                           "step_status": seen["status"] if seen else "skipped"}
                if seen:
                    tool_msg["code_or_arguments"] = seen["code_or_arguments"]
                    tool_msg["sha256"] = seen["sha256"]
                self._insert_after_round(asked, tool_msg)

    def _results_of(self, asked: StoredMessage) -> list[StoredMessage]:
        transcript = self.turn.transcript
        at = next(i for i, m in enumerate(transcript) if m is asked) + 1
        found = []
        while at < len(transcript) and transcript[at].get("role") == "tool":
            found.append(transcript[at])
            at += 1
        return found

    def _insert_after_round(self, assistant: StoredMessage, tool_msg: StoredMessage) -> None:
        """Put ``tool_msg`` after the tool messages that follow ``assistant`` (the round's results)."""
        transcript = self.turn.transcript
        at = next(i for i, m in enumerate(transcript) if m is assistant) + 1
        while at < len(transcript) and transcript[at].get("role") == "tool":
            at += 1
        transcript.insert(at, tool_msg)
