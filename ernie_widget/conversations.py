"""Conversations shared by the widget and the magics: a named registry, one turn in flight per thread.

`ErnieChat(thread="notes")` and `%%ernie --thread notes` continue the same conversation. A named
thread can be persisted to SQLite so it survives a kernel restart.
"""

from __future__ import annotations

import copy
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from .client.errors import ErnieError
from .protocol import StoredMessage

__all__ = ["CLEARED_NOTICE", "DEFAULT_THREAD", "LAST_CALL_THREAD", "TOOL_FIGURES", "WITHDRAWN_NOTICE", "Conversation", "ThreadBusyError", "get_thread", "thread_names"]

DEFAULT_THREAD = "default"
#: where a `%ernie` call without a thread is recorded (its one exchange only, for `--paste N`); never history
LAST_CALL_THREAD = "%ernie last call"

logger = logging.getLogger("ernie_widget")

#: what replaces an answer ERNIE's safety system withdrew (flag 3/4), in the widget and the magics
WITHDRAWN_NOTICE = "该回答已因安全原因撤回 / this answer was withdrawn for safety reasons"
#: shown when ERNIE asks for the history to be cleared (need_clear_history)
CLEARED_NOTICE = "因安全原因，之前的对话不再发送给模型 / earlier turns are no longer sent to the model (safety)"

Message = dict[str, Any]
Listener = Callable[["Conversation"], None]


#: internal markers of `history`: a tool message's images sent to the model; a user message that carries them
_IMAGES = "\x00images"
_FIGURES = "\x00figures"
#: the text part of the user message that carries the figures of a round of tool calls (vision models)
TOOL_FIGURES = "工具生成的图像 / the figures the tool calls above produced"
#: what the model reads for a call whose result was not stored
_NOT_RUN = "未运行 / not run"


def _tool_rounds(out: list[Message]) -> list[Message]:
    """Each assistant ``tool_calls`` message followed by exactly one ``tool`` message per call (a missing one
    says "not run"; strays are dropped), then the round's images as one user message."""
    fixed: list[Message] = []
    i = 0
    while i < len(out):
        m = out[i]
        i += 1
        if m["role"] == "tool":
            continue  # a result whose call is gone
        fixed.append(m)
        if m["role"] != "assistant" or not m.get("tool_calls"):
            continue
        results: dict[str, Message] = {}
        while i < len(out) and out[i]["role"] == "tool":
            results.setdefault(str(out[i]["tool_call_id"]), out[i])
            i += 1
        images: list[str] = []
        for call in m["tool_calls"]:
            call_id = str(call.get("id"))
            fn = call.get("function") or {}
            result = results.get(call_id) or {"role": "tool", "tool_call_id": call_id,
                                              "name": fn.get("name", ""), "content": _NOT_RUN}
            images.extend(result.get(_IMAGES) or [])
            fixed.append({k: v for k, v in result.items() if k != _IMAGES})
        if images:
            fixed.append({"role": "user", _FIGURES: True, "content": [
                {"type": "text", "text": TOOL_FIGURES}, *({"type": "image_url", "image_url": {"url": u}} for u in images)]})
    return fixed


class ThreadBusyError(ErnieError):
    """A turn is already streaming in this conversation."""


class _Store:
    """A tiny SQLite store: one row per thread holding its messages as JSON (WAL, committed per turn)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS threads (name TEXT PRIMARY KEY, messages TEXT NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def load(self, name: str) -> list[Message]:
        with self._lock, self._connect() as db:
            row = db.execute("SELECT messages FROM threads WHERE name = ?", (name,)).fetchone()
        if not row:
            return []
        try:
            data = json.loads(row[0])
        except ValueError:
            return []
        return [m for m in data if isinstance(m, dict) and m.get("role") in ("user", "assistant")]

    def save(self, name: str, messages: list[Message]) -> None:
        payload = json.dumps(messages, ensure_ascii=False)
        with self._lock, self._connect() as db:
            db.execute("INSERT INTO threads(name, messages) VALUES(?, ?) "
                       "ON CONFLICT(name) DO UPDATE SET messages = excluded.messages", (name, payload))


class Conversation:
    """A list of messages plus the lock that allows one turn in flight."""

    def __init__(self, name: str | None = None, store: _Store | None = None) -> None:
        self.name = name
        self._store = store
        self._messages: list[Message] = store.load(name) if (store is not None and name) else []
        self._data_lock = threading.RLock()
        self._turn = threading.Lock()
        self._listeners: list[Listener] = []

    # -- turns -----------------------------------------------------------------------------------

    def try_begin_turn(self) -> bool:
        """Take the turn lock without waiting; False when another turn is streaming."""
        return self._turn.acquire(blocking=False)

    def end_turn(self) -> None:
        if self._turn.locked():
            self._turn.release()

    @property
    def busy(self) -> bool:
        return self._turn.locked()

    def busy_error(self) -> ThreadBusyError:
        """The error that says an answer is already streaming here (bilingual, names the thread)."""
        label = f"“{self.name}”" if self.name else ""
        return ThreadBusyError(
            f"对话{label}中已有回答正在生成，请稍候或先停止 / an answer is already streaming in thread "
            f"{self.name or '(private)'}; wait for it or stop it first"
        )

    def begin_or_raise(self) -> None:
        """Take the turn lock or raise `ThreadBusyError` (never waits: a second ask is refused)."""
        if not self.try_begin_turn():
            raise self.busy_error()

    # -- data ------------------------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """A deep copy of the messages (safe to hand to another thread)."""
        with self._data_lock:
            return copy.deepcopy(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def append(self, message: Message | StoredMessage) -> int:
        with self._data_lock:
            self._messages.append(cast(Message, message))
            index = len(self._messages) - 1
        self._changed()
        return index

    def truncate(self, length: int) -> None:
        with self._data_lock:
            del self._messages[length:]
        self._changed()

    def delete_turn(self, index: int) -> tuple[int, list[Message]]:
        """Delete the exchange holding message *index*: the question and its answer (in agent mode, with the tool
        rounds between them: everything up to the next question). Returns where it was and what was removed (for an
        undo with `restore`)."""
        with self._data_lock:
            msgs = self._messages
            if not (0 <= index < len(msgs)):
                return index, []
            start = index
            while start > 0 and msgs[start]["role"] != "user" and (msgs[start]["role"] == "tool" or msgs[start - 1]
                                                                    .get("tool_calls") or msgs[start - 1]["role"]
                                                                    in ("user", "tool")):
                start -= 1
            if msgs[start]["role"] != "user":
                start = index  # an answer without its question: only itself
            end = start + 1
            if msgs[start]["role"] == "user":
                while end < len(msgs) and msgs[end]["role"] != "user":
                    end += 1
                    if msgs[end - 1]["role"] == "assistant" and not msgs[end - 1].get("tool_calls"):
                        break  # the answer ends the exchange
            removed = msgs[start:end]
            del msgs[start:end]
        self._changed()
        return start, removed

    def restore(self, index: int, removed: list[Message], length: int) -> bool:
        """Put deleted messages back at *index*, if the conversation still has the *length* it had after the delete
        (anything asked or deleted since would make the restored turn land in the wrong place): True when restored."""
        with self._data_lock:
            if len(self._messages) != length or not 0 <= index <= length or not removed:
                return False
            self._messages[index:index] = removed
        self._changed()
        return True

    def exclude_before(self, index: int, *, notify: bool = True) -> None:
        """Keep messages visible but stop sending them (ERNIE's need_clear_history).

        ``notify=False`` skips listeners and the store: the caller is about to change the
        conversation again (the widget appends the answer), which saves and notifies once.
        """
        with self._data_lock:
            for m in self._messages[:index]:
                m["excluded"] = True
        if notify:
            self._changed()

    def clear(self) -> None:
        with self._data_lock:
            self._messages.clear()
        self._changed()

    def history(self, max_exchanges: int | None = None) -> list[Message]:
        """The list to send: failed and withdrawn turns left out, reasoning never sent back.

        Agent turns keep their tool rounds (assistant ``tool_calls``, one ``tool`` message per call, then the
        figures sent to a vision model as a user message of image parts), repaired so the history is always valid:
        a call without a result gets a "not run" one, a result without its call is dropped."""
        with self._data_lock:
            msgs = list(self._messages)
        out: list[Message] = []
        for m in msgs:
            if m.get("excluded") or m.get("withdrawn"):
                continue
            if m["role"] == "tool":
                out.append({"role": "tool", "tool_call_id": m.get("tool_call_id", ""), "name": m.get("name", ""),
                            "content": m.get("content") or "(no output)", _IMAGES: m.get("images") or []
                            if m.get("images_sent") else []})
            elif m["role"] == "assistant":
                if m.get("tool_calls"):
                    out.append({"role": "assistant", "content": m.get("content", ""),
                                "tool_calls": copy.deepcopy(m["tool_calls"])})
                elif not m.get("content"):
                    # an answer that produced nothing: drop the question it answered too
                    if out and out[-1]["role"] == "user":
                        out.pop()
                else:
                    out.append({"role": "assistant", "content": m["content"]})
            else:
                content: Any = m.get("content", "")
                if m.get("context"):  # the @-mentions' text, exactly as shown in the transcript
                    from .context import format_context

                    content = f"{content}\n\n{format_context(m['context'])}"
                if m.get("images"):
                    content = [{"type": "text", "text": content},
                               *({"type": "image_url", "image_url": {"url": u}} for u in m["images"])]
                if out and out[-1]["role"] == "user":
                    out.pop()  # a question whose answer was lost: keep only the newer one
                out.append({"role": "user", "content": content})
        out = _tool_rounds(out)
        if max_exchanges is not None and max_exchanges >= 0:
            # keep the last N exchanges plus the current question
            questions = [i for i, m in enumerate(out) if m["role"] == "user" and not m.get(_FIGURES)]
            current = 1 if questions and questions[-1] == len(out) - 1 else 0
            keep = max_exchanges + current
            out = out[questions[-keep]:] if keep and len(questions) >= keep else ([] if not keep else out)
        while out and out[0]["role"] in ("assistant", "tool"):
            out.pop(0)
        return [{k: v for k, v in m.items() if k != _FIGURES} for m in out]

    def last_answer(self) -> Message | None:
        with self._data_lock:
            for m in reversed(self._messages):
                if m["role"] == "assistant":
                    return copy.deepcopy(m)
        return None

    # -- listeners and persistence ---------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        try:
            self._listeners.remove(listener)
        except ValueError:
            pass

    def _changed(self) -> None:
        if self._store is not None and self.name:
            # under the data lock, so two threads cannot save their snapshots in the wrong order
            with self._data_lock:
                self._store.save(self.name, self.messages)
        for listener in list(self._listeners):
            try:
                listener(self)
            except Exception:  # a broken view must not break the conversation
                logger.exception("conversation listener failed")

    def _attach_store(self, store: _Store) -> None:
        """Persist this conversation from now on: the saved history first, then what only memory has.

        A thread used before its store is attached (``%%ernie --thread t`` right after a kernel restart, then
        the sidebar's ``ErnieChat(thread=t, store=…)``) holds only this kernel's turns, and the store holds
        everything before. Merging, not refusing: the attach is often implicit (the sidebar), the user did
        nothing wrong, and both halves are theirs. Saved messages come first because they were written
        before this kernel's in-memory turns; a side that already contains the other is not doubled.
        """
        if self._store is not None or not self.name:
            return
        with self._data_lock:
            self._store = store
            stored = store.load(self.name)
            mine = self._messages
            if mine[: len(stored)] == stored:
                merged = mine  # nothing saved, or the saved messages are where ours began
            elif stored[: len(mine)] == mine:
                merged = stored  # ours are already saved (and more after them)
            else:
                merged = stored + mine
            changed = merged is not mine
            self._messages = merged
            if not changed:
                store.save(self.name, self.messages)
        if changed:
            self._changed()  # saves the merged list and shows it in the widgets already holding this thread


_registry: dict[str, Conversation] = {}
_stores: dict[str, _Store] = {}
_registry_lock = threading.Lock()


def get_thread(name: str | None, store: str | Path | None = None) -> Conversation:
    """The shared conversation called *name* (created on first use); None gives a new private one.

    With *store* (an SQLite path) a named conversation is loaded from and saved to it, per change.
    """
    st = None
    if store is not None:
        key = str(Path(store).resolve())
        with _registry_lock:
            st = _stores.get(key) or _stores.setdefault(key, _Store(key))
    if name is None:
        return Conversation(None, None)
    with _registry_lock:
        conv = _registry.get(name)
        if conv is None:
            conv = _registry[name] = Conversation(name, st)
            return conv
    if st is not None:
        conv._attach_store(st)  # the same object: widgets and magics already holding it stay in sync
    return conv


def thread_names() -> list[str]:
    with _registry_lock:
        return sorted(_registry)
