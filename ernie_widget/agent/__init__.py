"""The agent's kernel side: run Python like a cell (`run_python`), run tools on the kernel's main thread
(`KernelExecutor`), and stop either from any thread (`interrupt`); `McpServer` names an MCP server whose tools
a chat offers (mcp_tools.py).

Everything here runs user-visible code on the kernel's main thread, reached through
`ernie_widget.main_thread.MainThreadRunner`; docs/architecture.md, "Interrupting tool code", says where Stop can
and cannot cut it short.
"""

from __future__ import annotations

from .executor import KernelExecutor, ToolInterrupted
from .guard import Guarded, interrupt, run_guarded, tool_running
from .mcp_tools import McpServer
from .run_python import PythonResult, run_python

__all__ = ["Guarded", "KernelExecutor", "McpServer", "PythonResult", "ToolInterrupted", "interrupt", "run_guarded",
           "run_python", "tool_running"]
