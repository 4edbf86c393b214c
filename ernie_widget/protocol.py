"""The widget's wire protocol and the stored-message schema, as types — the one description both sides use.

`scripts/gen_protocol.py` writes `js/protocol.gen.ts` from this module, and `.ci/run` fails when the two differ,
so the Python and TypeScript sides cannot drift. Message fields are named `mid`/`seq`, never `id`: ipykernel 7.4
keeps a routing entry per string `id` in comm message content (docs/notebook-facts.md §2.7).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict, cast

if TYPE_CHECKING:
    from .client.events import Reply

__all__ = [
    "BROWSER_MESSAGES",
    "KERNEL_MESSAGES",
    "ApproveMsg",
    "AskMsg",
    "ClearMsg",
    "ContextItem",
    "ContinueMsg",
    "DeleteMsg",
    "DeletedMsg",
    "DeltaMsg",
    "DoneMsg",
    "EditMsg",
    "HelloMsg",
    "LastErrorMsg",
    "MentionMsg",
    "MentionRequestMsg",
    "MetricsDict",
    "NoticeMsg",
    "ResyncMsg",
    "ResyncRequestMsg",
    "RetryMsg",
    "Role",
    "SourcesMsg",
    "StartMsg",
    "StopMsg",
    "StoredMessage",
    "StoredToolCall",
    "ToolStepMsg",
    "ToolStepStatus",
    "TurnStatus",
    "UndoDeleteMsg",
    "UnmentionMsg",
    "UsageDict",
    "VariableEntry",
    "VariablesMsg",
    "VariablesRequestMsg",
    "WithdrawMsg",
    "merge_reply",
    "web_sources",
]

Role = Literal["user", "assistant", "tool"]
TurnStatus = Literal["ok", "stopped", "error"]
#: a tool step: waiting for the user's approval, running, done, failed (raised, timed out, stopped), skipped
ToolStepStatus = Literal["waiting", "running", "done", "failed", "skipped"]


class UsageDict(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class MetricsDict(TypedDict, total=False):
    ttft_ms: float | None
    duration_ms: float
    tokens_per_s: float | None
    chunks: int
    retries: int


class StoredMessage(TypedDict):
    """One message of a conversation: the `messages` trait of ErnieChat, and what `%%ernie` stores in a thread.

    Untrusted in the browser (it may come from a saved notebook): the front end validates every field.
    """

    role: Role
    content: str
    mid: NotRequired[int]
    status: NotRequired[TurnStatus]
    reasoning: NotRequired[str]
    usage: NotRequired[UsageDict]
    metrics: NotRequired[MetricsDict]
    finish_reason: NotRequired[str | None]
    error: NotRequired[str]
    #: "auth": the key was rejected or lacks permission (Retry cannot help; the error says how to set a key)
    error_kind: NotRequired[Literal["auth"]]
    truncated: NotRequired[bool]
    notice: NotRequired[str]
    images: NotRequired[list[str]]
    withdrawn: NotRequired[bool]
    #: provenance, put on the answer element for the companion extension's inserted cells
    model: NotRequired[str]
    request_id: NotRequired[str]
    #: the web sources the answer cites with `^[index]^` markers: `{index, url, title}` each (see `web_sources`)
    search_results: NotRequired[list[dict[str, Any]]]
    #: kernel side only: left out of the history sent to the model (ERNIE asked to clear it)
    excluded: NotRequired[bool]
    #: a user message's @-mentions: exactly the context text sent with it, one item per chip
    context: NotRequired[list[ContextItem]]
    #: agent mode, an assistant message of a turn (same `mid`) that asked for tools: the calls, OpenAI-shaped
    tool_calls: NotRequired[list[StoredToolCall]]
    #: agent mode, a `role: "tool"` message: the call it answers, the tool's name; `content` is the result the
    #: model read (redacted, bounded; untrusted text, never markup)
    tool_call_id: NotRequired[str]
    name: NotRequired[str]
    #: the step as the user saw it: its end status, what ran (run_python's code, or the arguments as JSON), the
    #: sha256 of that text, whether the user edited it, the figures it made (data URLs), whether those went to the
    #: model as image parts (vision models)
    step_status: NotRequired[ToolStepStatus]
    code_or_arguments: NotRequired[str]
    sha256: NotRequired[str]
    edited: NotRequired[bool]
    images_sent: NotRequired[bool]


class StoredToolCall(TypedDict):
    """One entry of an assistant message's `tool_calls` (OpenAI's shape; `function` holds `name` and the JSON
    `arguments` text)."""

    id: str
    type: Literal["function"]
    function: dict[str, Any]


class ContextItem(TypedDict):
    """One @-mention as it was sent: the chip's label and token estimate, and the exact text the model got."""

    #: what was mentioned: a variable name, "error", "In[3]", "Out[3]", "cell"
    name: str
    #: one line for the chip, e.g. "DataFrame 12,000 × 7"
    label: str
    tokens: int
    text: str
    #: the text was shortened to fit the turn's context budget
    shortened: NotRequired[bool]


class VariableEntry(TypedDict):
    """One row of the @ suggestion list."""

    name: str
    #: the type, e.g. "DataFrame", "ndarray", "Figure", "function"
    kind: str
    #: the size where it is cheap to know, e.g. "12,000 × 7", "3 items"; "" otherwise
    size: str


def merge_reply(message: StoredMessage, reply: Reply) -> None:
    """Copy what a finished `Reply` says about the answer into its stored message (the widget and the magics
    store answers the same way)."""
    if reply.usage:
        message["usage"] = cast("UsageDict", reply.usage.to_dict())
    message["metrics"] = cast("MetricsDict", reply.metrics.to_dict())
    message["finish_reason"] = reply.finish_reason
    if reply.truncated:
        message["truncated"] = True
    if reply.model:
        message["model"] = reply.model
    if reply.request_id:
        message["request_id"] = reply.request_id
    sources = web_sources(reply.search_results)
    if sources:
        message["search_results"] = sources


#: sources kept per answer, and the longest title and URL kept: the list travels in the `messages` trait to every
#: view and into saved notebooks
MAX_SOURCES = 50
_MAX_TITLE = 200
_MAX_URL = 2048


def _source_index(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 999:
        return value
    return None


def web_sources(results: Iterable[Any] | None) -> list[dict[str, Any]]:
    """The usable entries of search results as ``{index, url, title}``, by index, one per index.

    The service's entries are untrusted data: an entry without a numeric `index`, or without a url or title,
    is dropped, and strings are cut to size. A later entry replaces an earlier one with the same index, so
    ``web_sources([*seen, *new])`` merges the lists ERNIE sends in a stream's first and last chunk.
    """
    by_index: dict[int, dict[str, Any]] = {}
    for entry in results or ():
        if not isinstance(entry, dict):
            continue
        index = _source_index(entry.get("index"))
        url = entry.get("url")
        url = url.strip() if isinstance(url, str) and len(url.strip()) <= _MAX_URL else ""
        title = entry.get("title")
        title = re.sub(r"\s+", " ", title).strip() if isinstance(title, str) else ""
        if len(title) > _MAX_TITLE:
            title = title[:_MAX_TITLE - 1] + "…"
        if index is None or not (url or title):
            continue
        by_index[index] = {"index": index, "url": url, "title": title}
    return [by_index[i] for i in sorted(by_index)][:MAX_SOURCES]


# -- kernel → browser ---------------------------------------------------------------------------------------


class StartMsg(TypedDict):
    """Answer `mid` begins; `host` (when the answer comes over the network) is shown until its first piece."""

    type: Literal["start"]
    mid: int
    host: NotRequired[str]


class DeltaMsg(TypedDict):
    """Text pieces of answer `mid`; `seq` counts 0, 1, 2 … per answer (a reconnecting view may see gaps)."""

    type: Literal["delta"]
    mid: int
    seq: int
    text: NotRequired[str]
    reasoning: NotRequired[str]


class ResyncMsg(TypedDict):
    """Everything of answer `mid` so far; the next delta has this `seq`."""

    type: Literal["resync"]
    mid: int
    seq: int
    text: str
    reasoning: str


class DoneMsg(TypedDict):
    type: Literal["done"]
    mid: int
    status: TurnStatus
    error: NotRequired[str]


class SourcesMsg(TypedDict):
    """The web sources of answer `mid` so far, `{index, url, title}` each: they replace any sent before."""

    type: Literal["sources"]
    mid: int
    results: list[dict[str, Any]]


class NoticeMsg(TypedDict):
    type: Literal["notice"]
    text: str


class VariablesMsg(TypedDict):
    """The answer to a `variables` request `rid`: the user's variables matching its prefix (at most a few hundred),
    plus the special mentions (error, In[n], Out[n], cell) that exist; "busy" while a cell runs."""

    type: Literal["variables"]
    rid: int
    status: Literal["ok", "busy"]
    items: list[VariableEntry]


class MentionMsg(TypedDict):
    """The answer to a `mention` request `rid`: the chip `cid`, a snapshot of the text that will be sent (or why
    nothing can be)."""

    type: Literal["mention"]
    rid: int
    status: Literal["ok", "busy", "error"]
    cid: NotRequired[int]
    item: NotRequired[ContextItem]
    error: NotRequired[str]


class LastErrorMsg(TypedDict):
    """The last cell raised (`summary`: "ZeroDivisionError: division by zero"), or the error is gone (None): the
    view offers or hides its "Fix last error" chip."""

    type: Literal["last_error"]
    summary: str | None


class ToolStepMsg(TypedDict):
    """Agent mode: a tool step of answer `mid` is new or changed (the latest message per `call_id` wins).

    `code_or_arguments` is run_python's code, or the call's arguments as JSON; `sha256` is the hex sha256 of that
    text (UTF-8), which an `approve` must name. `read_only` steps (list_variables, describe) run without asking.
    `result` (done, failed, skipped) is the text the model read: untrusted, shown as text. `images`: figures the
    step made, as data URLs."""

    type: Literal["tool_step"]
    mid: int
    call_id: str
    name: str
    code_or_arguments: str
    sha256: str
    status: ToolStepStatus
    read_only: bool
    result: NotRequired[str]
    images: NotRequired[list[str]]
    edited: NotRequired[bool]


class DeletedMsg(TypedDict):
    """`count` messages from `index` were deleted (a turn): the view offers Undo (an `undo_delete` message)."""

    type: Literal["deleted"]
    index: int
    count: int


class WithdrawMsg(TypedDict):
    """ERNIE withdrew answer `mid`: replace what was shown with `notice`."""

    type: Literal["withdraw"]
    mid: int
    notice: str


# -- browser → kernel ---------------------------------------------------------------------------------------


class AskMsg(TypedDict):
    type: Literal["ask"]
    text: str
    images: NotRequired[list[str]]
    #: the chips (`cid` of each `mention` answer) whose snapshots go with this message, in order
    mentions: NotRequired[list[int]]


class VariablesRequestMsg(TypedDict):
    """The @ list is open: which variables start with `prefix` (answered by a `variables` message `rid`)."""

    type: Literal["variables"]
    rid: int
    prefix: str


class MentionRequestMsg(TypedDict):
    """Add a chip for `name` (a variable, "error", "In[n]", "Out[n]", "cell"): answered by a `mention` message."""

    type: Literal["mention"]
    rid: int
    name: str


class UnmentionMsg(TypedDict):
    """Chip `cid` was removed: its snapshot can go."""

    type: Literal["unmention"]
    cid: int


class ApproveMsg(TypedDict):
    """The user's decision on the waiting tool step `call_id` (sent only on a real click): "run" it as shown,
    "edit" (run `code` instead: run_python's code, or the arguments as JSON), or "skip" it (the model is told the
    user declined). `sha256` is that of the `code_or_arguments` the card showed: a stale or altered approval, or
    one for a step that is not waiting, runs nothing. A view that cannot offer the call skips it itself, with a
    `reason` (no click): "no_extension" for insert_cell without the companion extension."""

    type: Literal["approve"]
    call_id: str
    sha256: str
    decision: Literal["run", "edit", "skip"]
    code: NotRequired[str]
    reason: NotRequired[Literal["no_extension"]]


class StopMsg(TypedDict):
    type: Literal["stop"]


class RetryMsg(TypedDict):
    type: Literal["retry"]


class ClearMsg(TypedDict):
    type: Literal["clear"]


class ContinueMsg(TypedDict):
    type: Literal["continue"]


class DeleteMsg(TypedDict):
    type: Literal["delete"]
    index: int


class UndoDeleteMsg(TypedDict):
    """Bring back the turn deleted last (refused with a notice when the conversation changed since)."""

    type: Literal["undo_delete"]


class EditMsg(TypedDict):
    type: Literal["edit"]
    text: str


class ResyncRequestMsg(TypedDict):
    type: Literal["resync"]
    mid: int


class FrameTimingMsg(TypedDict):
    """For answer `mid`: [seq, ms] per rendered delta, the wait from its arrival to the frame that painted it."""

    type: Literal["frame_timing"]
    mid: int
    waits: list[list[float]]


class HelloMsg(TypedDict):
    """A view (re)connected: send it the answer in flight, if any."""

    type: Literal["hello"]


KERNEL_MESSAGES: tuple[type, ...] = (StartMsg, DeltaMsg, ResyncMsg, DoneMsg, SourcesMsg, NoticeMsg, WithdrawMsg,
                                     VariablesMsg, MentionMsg, LastErrorMsg, DeletedMsg, ToolStepMsg)
BROWSER_MESSAGES: tuple[type, ...] = (AskMsg, StopMsg, RetryMsg, ClearMsg, ContinueMsg, DeleteMsg, EditMsg,
                                      ResyncRequestMsg, HelloMsg, VariablesRequestMsg, MentionRequestMsg,
                                      UnmentionMsg, ApproveMsg, UndoDeleteMsg, FrameTimingMsg)
