"""The chat's approval bookkeeping: the one tool call waiting for the user, and the decisions that may release it.

`run_tools` asks its ``approve`` hook about one call at a time, so at most one call waits. Its waiter
(`Approvals.wait`, on the chat's private loop) names the call's id and the sha256 of the text the user is shown
(run_python's code, or the arguments as JSON). A decision (`Approvals.decide`, from any thread: ``chat.approve()``,
a view's ``approve`` message) releases it only when it names that call and, from a view, that hash: a stale
approval (another call, a call no longer waiting) or an altered one (a different hash) runs nothing and is
reported as refused. The first valid decision wins; `cancel` (Stop) ends the wait.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["REASONS", "Approvals", "Decision", "Pending", "Reason", "sha256_of"]

Choice = Literal["run", "edit", "skip"]


def sha256_of(text: str) -> str:
    """The hex sha256 of ``text`` (UTF-8): what an approval names."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


#: why a view skipped a call without the user's click: it cannot do what the call asks (insert_cell without the
#: companion extension). Anything else a view sends as ``reason`` is dropped.
Reason = Literal["no_extension"]
REASONS: tuple[Reason, ...] = ("no_extension",)


@dataclass(frozen=True)
class Decision:
    """The user's decision: run as shown, run ``code`` instead (edit), or skip (``reason``: a view could not
    offer the call, see `REASONS`)."""

    choice: Choice
    code: str | None = None
    reason: Reason | None = None


@dataclass
class Pending:
    """The call waiting for a decision."""

    call_id: str
    name: str
    code: str
    sha256: str
    #: run_python's code is edited as code; any other tool's as a JSON object of arguments
    code_is_python: bool
    future: asyncio.Future[Decision] = field(repr=False)
    loop: asyncio.AbstractEventLoop = field(repr=False)
    decided: bool = False


class Approvals:
    """The call waiting for the user's decision, if any (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Pending | None = None

    @property
    def pending(self) -> Pending | None:
        return self._pending

    async def wait(self, call_id: str, name: str, code: str, *, code_is_python: bool,
                   announce: Callable[[], None] | None = None) -> Decision:
        """Wait (on the running loop) until a valid decision for this call arrives. ``announce()`` runs once the
        call can be decided (a view that answers the announcement at once is not refused)."""
        loop = asyncio.get_running_loop()
        pending = Pending(call_id, name, code, sha256_of(code), code_is_python, loop.create_future(), loop)
        with self._lock:
            self._pending = pending
        try:
            if announce is not None:
                announce()
            return await pending.future
        finally:
            with self._lock:
                if self._pending is pending:
                    self._pending = None

    def decide(self, call_id: str | None, choice: str, *, sha256: str | None, code: str | None = None,
               require_hash: bool = True, reason: str | None = None) -> str | None:
        """Release the waiting call with ``choice``; None when done, else why nothing was released (bilingual).

        ``call_id=None`` means the waiting call (Python only: a view always names it). With ``require_hash`` the
        ``sha256`` must be that of the text shown; without it, a given ``sha256`` must still match."""
        if choice not in ("run", "edit", "skip"):
            return f"无效的决定 / an approval is run, edit or skip, not {choice!r}"
        edited: str | None = None
        if choice == "edit":
            if not isinstance(code, str) or not code.strip():
                return "编辑后的代码为空 / the edited code is empty"
            edited = code
        with self._lock:
            pending = self._pending
            if pending is None or pending.decided:
                return "没有等待批准的工具调用 / no tool call is waiting for approval"
            if call_id is not None and call_id != pending.call_id:
                return (f"工具调用 {call_id!r} 不在等待批准 / tool call {call_id!r} is not the one waiting "
                        "(a stale approval): nothing was run")
            if (require_hash or sha256 is not None) and sha256 != pending.sha256:
                return ("代码与显示的不一致 / the approval does not match the code shown (sha256): nothing was run")
            if edited is not None and not pending.code_is_python:
                problem = _json_object_problem(edited)
                if problem:
                    return problem
            pending.decided = True
        known = next((r for r in REASONS if r == reason and choice == "skip"), None)
        decision = Decision(choice, edited, known)  # type: ignore[arg-type]
        pending.loop.call_soon_threadsafe(_resolve, pending.future, decision)
        return None

    def cancel(self) -> None:
        """End the wait (Stop): the waiter gets `asyncio.CancelledError`."""
        with self._lock:
            pending = self._pending
            if pending is None:
                return
            pending.decided = True
        pending.loop.call_soon_threadsafe(pending.future.cancel)


def _resolve(future: asyncio.Future[Decision], decision: Decision) -> None:
    if not future.done():
        future.set_result(decision)


def _json_object_problem(text: str) -> str | None:
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"参数不是有效的 JSON / the edited arguments are not valid JSON: {exc}"
    if not isinstance(value, dict):
        return "参数必须是 JSON 对象 / the edited arguments must be a JSON object"
    return None
