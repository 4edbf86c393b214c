"""ErnieChat's agent-mode API (`AgentChatMixin`): ``@chat.tool``, ``chat.approve()``, ``chat.deny()``.

The tool loop itself is `ernie_widget.agent.turn.ChatTools`; this mixin only wires it to the widget, so widget.py
stays about the chat. The agent package is imported on first use: a chat without tools never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client.errors import ErnieError

if TYPE_CHECKING:
    from .agent.turn import ChatTools
    from .chat_context import ChatContext

__all__ = ["KERNEL_ONLY", "NO_TOOLS_OFFLINE", "AgentChatMixin"]

#: synced traits a view may not write (see `ErnieChat.set_state`)
KERNEL_ONLY = ("auto_approve", "agent", "auto_approve_tools")
NO_TOOLS_OFFLINE = ("离线模型不能调用工具，代理模式已关闭 / the offline model cannot call tools: agent mode is off "
                    "(use ERNIE through Qianfan or AI Studio for it)")


class AgentChatMixin:
    """The agent-mode methods of ErnieChat (see its docstring)."""

    _tools: ChatTools | None
    _tool_limits: tuple[int, float | None]
    _mcp: list[Any]
    _backend: Any
    _context: ChatContext
    auto_approve: bool
    auto_approve_tools: list[str]
    agent: bool

    def tool(self, fn: Any) -> Any:
        """Decorator: ``@chat.tool`` makes ``fn`` a tool the model may call (after your approval). Returns ``fn``."""
        if self._tools is None:
            if self._backend is not None or self._offline_model() is not None:
                raise ErnieError("这个对话不能调用工具 / this chat cannot call tools (the offline model and custom "
                                 "backends cannot)")
            self._start_tools(False, [])
        assert self._tools is not None
        self._tools.add(fn)
        return fn

    def approve(self, call_id: str | None = None, code: str | None = None) -> None:
        """Run the tool call waiting for approval (``call_id``: that call only); ``code=`` runs this instead
        (run_python's code, or another tool's arguments as JSON). Raises ErnieError when no such call waits."""
        self._require_tools().decide(call_id, "run" if code is None else "edit", code)

    def deny(self, call_id: str | None = None) -> None:
        """Skip the tool call waiting for approval: the model is told the user declined it."""
        self._require_tools().decide(call_id, "skip")

    # -- for the widget ----------------------------------------------------------------------------------------

    def _offline_model(self) -> str | None:
        raise NotImplementedError

    def _reads_images(self) -> bool:
        raise NotImplementedError

    def _emit(self, msg: dict[str, Any]) -> None:
        raise NotImplementedError

    def _start_tools(self, builtins: bool, tools: list[Any]) -> None:
        from .agent.turn import ChatTools

        rounds, timeout = self._tool_limits
        self._tools = ChatTools(builtins=builtins, tools=tools, shell=self._context.shell, runner=self._context.runner,
                                vision=self._reads_images, emit=self._emit, auto_approve=lambda: self.auto_approve,
                                max_rounds=rounds, tool_timeout=timeout, mcp=self._mcp,
                                auto_approve_tools=lambda: self.auto_approve_tools)
        self.agent = True

    def _close_tools(self) -> None:
        """The widget closed: its MCP servers stop (their processes end)."""
        if self._tools is not None:
            self._tools.close()

    def _require_tools(self) -> ChatTools:
        if self._tools is None:
            raise ErnieError("这个对话没有工具 / this chat has no tools (agent=True or tools=[...])")
        return self._tools

    def _stop_tools(self) -> None:
        """Stop: a call waiting for approval is not run, a running tool is interrupted."""
        if self._tools is None:
            return
        self._tools.approvals.cancel()
        if self._tools.running:
            from .agent import interrupt

            interrupt()
