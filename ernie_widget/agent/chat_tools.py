"""The chat's tools: the built-in ones of ``ErnieChat(agent=True)`` and where every tool runs (`ChatExecutor`).

Built-in tools, each run on the kernel's main thread through `MainThreadRunner` (never on the chat's private loop):

- ``run_python(code)`` — `ernie_widget.agent.run_python` in the user's namespace, with Stop and the time limit of
  `run_guarded`; the model reads its text (redacted, bounded); its figures travel as `ToolText.images`.
- ``list_variables(prefix)`` and ``describe(name)`` — read-only, through the context renderers (the @-mention
  code: bounded, key-shaped values refused). They run without asking.
- ``insert_cell(code)`` — proposes a new cell. Nothing runs in the kernel: the step shows the code with an Insert
  button when the companion JupyterLab extension is present, whose trusted click the extension turns into a cell
  below the chat's (the path of the chat's code-block Insert button, labextension/src/actions.ts); the view then
  reports the click as the step's approval. Without the extension the view reports that instead (turn.py says
  what the model reads in each case).

User tools run through `KernelExecutor` (sync ones on the main thread, under `run_guarded`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..client.events import ToolCall
from ..client.tools import Tool, as_tool
from ..main_thread import KernelBusy, MainThreadRunner
from .executor import NO_LIMIT_WAIT, WAIT_MARGIN, KernelExecutor, ToolInterrupted
from .guard import interrupt
from .run_python import run_python

__all__ = ["BUILTIN_NAMES", "CODE_TOOLS", "INSERTED", "NO_EXTENSION", "READ_ONLY", "Builtin", "ChatExecutor",
           "ToolText", "builtin_tools", "shown_text"]

BUILTIN_NAMES = ("run_python", "list_variables", "describe", "insert_cell")
#: built-in tools whose step shows Python code (approved, edited and hashed as code, not JSON arguments)
CODE_TOOLS = frozenset({"run_python", "insert_cell"})
#: what the model reads when the user clicked Insert (the extension put the cell in the notebook)
INSERTED = ("用户已将代码插入为新单元格（未运行）/ the user inserted the code as a new cell below the chat's cell; "
            "it has not been run")
#: what the model reads when no view could insert a cell
NO_EXTENSION = ("未插入：没有 ernie-widget 的 JupyterLab 扩展 / not inserted: the companion JupyterLab extension, "
                "which inserts cells, is not present here; the user can copy the code from the step")
#: built-in tools that only read: they run without the user's approval
READ_ONLY = frozenset({"list_variables", "describe"})
#: the longest variable list list_variables returns
MAX_VARIABLES = 200
#: how long an approved call waits for the main thread while a cell runs (``chat.approve()`` in a cell: the tool
#: runs when that cell ends); then it fails with "kernel busy"
BUSY_WAIT = 30.0
#: KernelBusy raised sooner than this came before the job was scheduled, so trying again cannot run it twice
_REFUSED_AT_ONCE = 0.5


class ToolText(str):
    """A tool's text for the model, with what it does not carry as text: images (data URLs), whether the code
    it ran failed (an ``ok`` result of run_python may report a traceback), and whether it was interrupted."""

    images: list[str]
    failed: bool
    interrupted: bool

    def __new__(cls, text: str, images: list[str] | None = None, failed: bool = False,
                interrupted: bool = False) -> ToolText:
        made = super().__new__(cls, text)
        made.images = list(images or [])
        made.failed = failed
        made.interrupted = interrupted
        return made


@dataclass(frozen=True)
class Builtin:
    """A built-in tool: its schema (a `Tool`) and how it runs on the main thread (``run(arguments, timeout)``)."""

    tool: Tool
    run: Callable[[Mapping[str, Any], float | None], ToolText]
    read_only: bool
    #: it reads or runs user objects, so it runs on the main thread (insert_cell touches nothing of the kernel)
    main_thread: bool = True


def builtin_tools(shell: Any, vision: Callable[[], bool]) -> list[Builtin]:
    """run_python, list_variables and describe over ``shell``'s namespace."""

    def run_python_tool(code: str) -> str:
        """Run Python code in the user's Jupyter kernel, in their namespace, like a notebook cell (variables it
        creates stay). Returns what it printed, the value of the last expression, or the traceback.
        用户批准后在用户的内核中运行 Python 代码。

        Args:
            code: the Python code to run
        """
        raise RuntimeError("run through ChatExecutor")  # pragma: no cover - the executor runs it

    def list_variables_tool(prefix: str = "") -> str:
        """List the user's variables in the notebook (name, type, size), optionally those starting with prefix.
        列出用户笔记本中的变量。

        Args:
            prefix: only names starting with this text
        """
        raise RuntimeError("run through ChatExecutor")  # pragma: no cover

    def describe_tool(name: str) -> str:
        """Describe one variable of the notebook: its type, shape, columns, a sample of its values (bounded).
        Also "error" (the last error), "cell", "In[3]", "Out[3]". 描述笔记本中的一个变量。

        Args:
            name: the variable's name
        """
        raise RuntimeError("run through ChatExecutor")  # pragma: no cover

    def insert_cell_tool(code: str) -> str:
        """Propose a new notebook cell with this code, inserted below the chat's cell when the user clicks Insert
        (it is not run). 建议一个新的笔记本单元格，用户点击"插入"后插入（不运行）。

        Args:
            code: the cell's Python code
        """
        raise RuntimeError("run through ChatExecutor")  # pragma: no cover

    def inserted(_arguments: Mapping[str, Any], _timeout: float | None) -> ToolText:
        return ToolText(INSERTED)  # the view's Insert click approved it: the extension has inserted the cell

    def run_code(arguments: Mapping[str, Any], timeout: float | None) -> ToolText:
        result = run_python(str(arguments["code"]), shell=shell, timeout=timeout)
        return ToolText(result.text, result.images, failed=result.status != "ok",
                        interrupted=result.status == "interrupted")

    def list_names(arguments: Mapping[str, Any], _timeout: float | None) -> ToolText:
        from ..context import list_variables

        ns = shell.user_ns
        hidden = set(getattr(shell, "user_ns_hidden", {}) or ())
        entries = list_variables(ns, str(arguments.get("prefix") or ""), MAX_VARIABLES, hidden=hidden)
        if not entries:
            return ToolText("(no variables / 没有变量)")
        return ToolText("\n".join(f"{e['name']}: {e['kind']}{' ' + e['size'] if e['size'] else ''}" for e in entries))

    def describe_name(arguments: Mapping[str, Any], _timeout: float | None) -> ToolText:
        from ..context import describe

        mention = describe(str(arguments["name"]), shell.user_ns, shell=shell, vision=vision())
        return ToolText(mention.item["text"], list(mention.images))

    return [
        Builtin(as_tool(_named(run_python_tool, "run_python")), run_code, False),
        Builtin(as_tool(_named(list_variables_tool, "list_variables")), list_names, True),
        Builtin(as_tool(_named(describe_tool, "describe")), describe_name, True),
        Builtin(as_tool(_named(insert_cell_tool, "insert_cell")), inserted, False, main_thread=False),
    ]


def _named(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    fn.__name__ = fn.__qualname__ = name
    return fn


def shown_text(call: ToolCall) -> tuple[str, bool]:
    """What the user is shown and approves for ``call`` (its sha256 is taken of this), and whether it is Python
    code: the ``code`` of run_python and insert_cell; for any other tool the arguments as indented JSON."""
    parsed = call.parsed
    if call.name in CODE_TOOLS and parsed is not None and isinstance(parsed.get("code"), str):
        return parsed["code"], True
    if parsed is None:
        return call.arguments, False
    return json.dumps(parsed, ensure_ascii=False, indent=2, default=str), False


class ChatExecutor:
    """Runs the chat's tools: built-ins on the main thread through the runner (they guard themselves: run_python
    with `run_guarded`, the renderers with their own time limit), user tools through `KernelExecutor`.
    ``running`` says whether one of this chat's tools runs now (Stop then interrupts it); ``interrupted`` that a
    tool of the current turn was interrupted — by Stop, or by the kernel's own interrupt (■), which ends the turn
    the same way."""

    def __init__(self, runner: MainThreadRunner, builtins: list[Builtin]) -> None:
        self._runner = runner
        self._kernel = KernelExecutor(runner=runner)
        self._builtins = {b.tool.name: b for b in builtins}
        self.running = 0
        self.interrupted = False

    def _builtin(self, tool: Tool) -> Builtin | None:
        found = self._builtins.get(tool.name)
        return found if found is not None and found.tool is tool else None

    def run(self, tool: Tool, arguments: dict[str, Any], timeout: float | None,
            stopped: threading.Event | None = None) -> Any:
        builtin = self._builtin(tool)
        if builtin is None:
            return self._when_free(lambda: self._kernel.run(tool, arguments, timeout), stopped)
        if not builtin.main_thread:
            return builtin.run(arguments, timeout)
        wait = NO_LIMIT_WAIT if not timeout or timeout <= 0 else timeout + WAIT_MARGIN
        return self._when_free(lambda: self._runner.call(lambda: builtin.run(arguments, timeout), timeout=wait),
                               stopped)

    async def arun(self, tool: Tool, arguments: dict[str, Any], timeout: float | None) -> Any:
        self.running += 1
        stopped = threading.Event()
        try:
            if tool.is_async:
                return await self._kernel.arun(tool, arguments, timeout)
            try:
                value = await asyncio.to_thread(self.run, tool, arguments, timeout, stopped)
            except asyncio.CancelledError:
                stopped.set()  # a call still waiting for the main thread never starts
                interrupt()  # Stop: the code it was waiting for ends too
                raise
            except ToolInterrupted:
                self.interrupted = True
                raise
            if isinstance(value, ToolText) and value.interrupted:
                self.interrupted = True
            return value
        finally:
            self.running -= 1

    @staticmethod
    def _when_free(call: Callable[[], Any], stopped: threading.Event | None) -> Any:
        """``call()``, tried again while the main thread is busy with a cell (up to `BUSY_WAIT` s). Only a refusal
        that came at once is retried: the job was never scheduled then, so it cannot run twice."""
        deadline = time.monotonic() + BUSY_WAIT
        while True:
            if stopped is not None and stopped.is_set():
                raise KernelBusy()
            started = time.monotonic()
            try:
                return call()
            except KernelBusy:
                now = time.monotonic()
                if now - started > _REFUSED_AT_ONCE or now > deadline:
                    raise
            time.sleep(0.05)
