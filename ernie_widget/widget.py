"""`ErnieChat`: the streaming chat widget. Traits, the delta protocol, no HTTP.

State: the transcript lives in the `messages` trait. It is written when a question is added and
when its answer is complete (one `update` message each, together with `status`), never per delta.
The answer in flight travels as custom messages: a first piece at once, then coalesced at most once per 1/60 s
(≤ 60 messages/s; docs/notebook-facts.md §0, §6):

    kernel → browser   {"type": "start", "mid"}
                       {"type": "delta", "mid", "seq", "text"?, "reasoning"?}    seq 0, 1, 2… per mid
                       {"type": "resync", "mid", "seq", "text", "reasoning"}     all so far; next delta is seq
                       {"type": "done", "mid", "status", "error"?}               status ok | stopped | error
                       {"type": "sources", "mid", "results"}                     web sources so far (replace)
                       {"type": "notice", "text"}
                       {"type": "withdraw", "mid", "notice"}
                       {"type": "tool_step", "mid", "call_id", "name", "code_or_arguments", "sha256", "status", …}
    browser → kernel   ask {text, images?} · stop · retry · clear · continue · delete {index} · edit {text}
                       · resync {mid} · hello · approve {call_id, sha256, decision, code?}

No field is ever named `id` (ipykernel 7.4 keeps a routing entry per outgoing `id`, §2.7). Streams run
on the package's private loop, so the kernel never blocks and Stop works while the shell is idle.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import pathlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from .agent_chat import KERNEL_ONLY, NO_TOOLS_OFFLINE, AgentChatMixin
from .chat_context import ChatContext
from .client.background import background_loop, in_background_loop
from .client.config import host_of
from .client.errors import AuthenticationError, ContentFilterError, ErnieError, PermissionDeniedError
from .client.handoff import Handoff
from .client.local_files import is_gguf
from .client.local_notice import offline_model_notice
from .client.messages import image as image_part
from .conversations import CLEARED_NOTICE, DEFAULT_THREAD, WITHDRAWN_NOTICE, Conversation, get_thread
from .deltas import DeltaBatcher
from .frame_clock import FrameClock, FrameReport, parse_frame_report
from .protocol import StoredMessage, merge_reply
from .transcript import Transcript, conversation_markdown
from .turns import AskHandle, Backend, Turn, backend_texts, chat_pair, last_user_index, public_message

if TYPE_CHECKING:
    from .agent.turn import ChatTools

__all__ = ["AskHandle", "ErnieChat", "Transcript"]

logger = logging.getLogger("ernie_widget")

STATIC = pathlib.Path(__file__).parent / "static"
_FALLBACK_ESM = """
export default { render({ el }) {
  el.textContent = "ernie-widget: the front end is not built. Run `npm install && npm run build` " +
    "in the source tree, or install a released wheel.";
} };
"""

_IMAGE_URL_PREFIXES = tuple(f"data:image/{t};base64," for t in ("png", "jpeg", "jpg", "gif", "webp"))

_mids = itertools.count(1)

class ErnieChat(AgentChatMixin, anywidget.AnyWidget):
    """A chat with ERNIE (or any model) inside the notebook.

    >>> chat = ErnieChat()                     # Ernie() from the environment, or the offline model
    >>> chat                                   # doctest: +SKIP
    >>> await chat.ask("用一句话介绍你自己")     # doctest: +SKIP

    ``thread="name"`` shares the conversation with ``%%ernie --thread name`` and other widgets;
    ``store="chat.sqlite"`` keeps it across kernel restarts (a store without a thread name uses the
    default thread). ``backend=fn`` replaces the client: ``fn(history)`` may return a string, an
    iterable or a generator of text pieces, an async generator, or an awaitable of any of these.
    ``web_search=True`` (or ``chat.web_search = True`` later) has ERNIE search the web for each answer: its
    sources are listed under the answer and its ``^[n]^`` citation markers link to them.

    Agent mode: ``agent=True`` gives ERNIE tools that work in this kernel — ``run_python(code)`` (runs in your
    namespace on the kernel's main thread, like a cell), the read-only ``list_variables()`` and
    ``describe(name)``, and ``insert_cell(code)`` (a new cell, inserted on your click of the step's Insert button
    when the companion JupyterLab extension is present); ``tools=[f, g]`` (or ``@chat.tool``) adds your own
    functions. Read-only tools run at once; every other call waits until you approve it: ``chat.approve()``
    (``code=`` runs edited code instead), ``chat.deny()``, the step's card in the chat, or ``auto_approve=True``
    (settable from Python only).
    ``max_tool_rounds`` (8) bounds the rounds of calls per question, ``tool_timeout`` (60 s) each call; Stop
    interrupts a running tool. Each call and its result are stored in ``messages`` (``tool_calls`` and ``tool``
    messages). The offline model cannot call tools: with it, agent mode is off and the chat says so.
    ``mcp=[...]`` adds the tools of MCP servers (``McpServer(command=[...], env={...})``, ``McpServer(url=...)``, or a
    URL / command-line string; ``pip install 'ernie-widget[agent]'``), started at the first question and stopped by
    ``close()``. MCP tools always ask, unless named in ``auto_approve_tools=[...]`` (Python only).
    """

    _esm = STATIC / "widget.js" if (STATIC / "widget.js").is_file() else _FALLBACK_ESM
    _css = STATIC / "widget.css" if (STATIC / "widget.css").is_file() else ""

    messages: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)
    lang = traitlets.Unicode("auto").tag(sync=True)
    send_mode = traitlets.Unicode("enter").tag(sync=True)
    model_label = traitlets.Unicode("").tag(sync=True)
    placeholder = traitlets.Unicode("").tag(sync=True)
    banner = traitlets.Unicode("").tag(sync=True)
    #: ask ERNIE to search the web and cite its sources (Qianfan's `web_search`); kernel side only, not synced
    web_search = traitlets.Bool(False)
    #: tokens of @-mention context per question; the largest items are shortened first to fit
    context_budget = traitlets.Int(4000).tag(sync=True)
    #: "auto": each question's system prompt lists the user's variables (names, types, sizes); "off": nothing
    #: about the namespace is sent unless mentioned
    context = traitlets.Enum(("off", "auto"), "off")
    #: the chat runs tools (``agent=True`` or ``tools=[…]``); shown by the views, set by the kernel only
    agent = traitlets.Bool(False).tag(sync=True)
    #: tool calls run without asking. Synced so the views can show it; only Python can set it (`set_state`)
    auto_approve = traitlets.Bool(False).tag(sync=True)
    #: tools (by name) that run without asking — the only way an MCP tool does; Python only, like auto_approve
    auto_approve_tools = traitlets.List(traitlets.Unicode()).tag(sync=True)

    def __init__(
        self,
        client: Any = None,
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        thread: str | None = None,
        backend: Backend | None = None,
        lang: str = "auto",
        store: str | pathlib.Path | None = None,
        send_mode: str = "enter",
        max_tokens: int | None = None,
        web_search: bool = False,
        agent: bool = False,
        tools: list[Any] | None = None,
        auto_approve: bool = False,
        max_tool_rounds: int = 8,
        tool_timeout: float | None = 60.0,
        mcp: Sequence[Any] | None = None,
        auto_approve_tools: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        if backend is not None and (agent or tools or mcp):
            raise ErnieError("自定义后端不能调用工具 / a custom backend cannot call tools: agent=True and tools= need "
                             "a client (ErnieChat(Ernie(...), agent=True))")
        if backend is None and client is None:
            from .client import Ernie

            client = Ernie("local", model=model) if is_gguf(model) else Ernie(model=model)
        self._client = client
        self._backend = backend
        self._model = model
        self._system = system
        self._temperature = temperature
        self._max_tokens = max_tokens
        if store is not None and thread is None:
            thread = DEFAULT_THREAD  # a private conversation has no name to store it under
        self._conv: Conversation = get_thread(thread, store=store)
        # RLock: a trait write under the lock can call back into `_sync_messages` (a listener)
        self._state_lock = threading.RLock()
        self._turn: Turn | None = None
        self._frames = FrameClock()  # the page's frame phase, learned across turns (frame_clock.py)
        self._reply_callbacks: list[Callable[[dict[str, Any]], Any]] = []
        base_url = getattr(self._client, "base_url", None) if backend is None else None
        self._host = host_of(base_url) if base_url else ""
        offline = self._offline_model()
        wants_tools = agent or bool(tools) or bool(mcp)
        if offline is not None:
            banner = offline_model_notice(offline, in_notebook=True)
            if wants_tools:
                banner = f"{NO_TOOLS_OFFLINE}\n\n{banner}"
            kwargs.setdefault("banner", banner)
            kwargs.setdefault("placeholder", "向离线模型提问… / Ask the offline model…")
        super().__init__(lang=lang, send_mode=send_mode, model_label=self._label(), web_search=web_search,
                         auto_approve=auto_approve, auto_approve_tools=list(auto_approve_tools), **kwargs)
        self._context = ChatContext(self._emit, self._reads_images)
        self._deleted: tuple[int, list[dict[str, Any]], int] | None = None  # the last delete, for undo_delete
        self._tools: ChatTools | None = None
        self._tool_limits = (max_tool_rounds, tool_timeout)
        self._mcp = list(mcp or [])
        if wants_tools and offline is None:
            self._start_tools(agent, tools or [])
        self._sync_messages()
        self._conv.subscribe(self._on_conversation_change)
        self.on_msg(self._on_custom)

    # -- public API ------------------------------------------------------------------------------

    @property
    def thread(self) -> str | None:
        """The shared conversation's name (None for a private one)."""
        return self._conv.name

    @property
    def client(self) -> Any:
        return self._client

    def ask(self, text: str, images: list[Any] | None = None, mentions: list[str | int] | None = None) -> AskHandle:
        """Send *text* (optionally with images for vision models). Returns at once; the answer streams.

        ``mentions`` attaches notebook context: variable names (``["sales", "error", "In[3]"]``), or the chips a
        view added. Exactly the text attached is stored with the question (``messages[i]["context"]``).
        Raises `ThreadBusyError` while another answer streams in the same conversation.
        """
        if not isinstance(text, str) or not text.strip():
            raise ErnieError("问题不能为空 / the question is empty")
        user: dict[str, Any] = {"role": "user", "content": text}
        items, mention_images = self._context.for_question(mentions or [], self.context_budget)
        if items:
            user["context"] = items
        if images or mention_images:
            user["images"] = [image_part(x)["image_url"]["url"] for x in images or []] + mention_images
        self._conv.begin_or_raise()
        return self._start_turn(lambda: self._conv.append(user))

    def stop(self) -> None:
        """Stop the answer in flight; its partial text is kept (status "stopped"). A running tool is interrupted and
        a call waiting for approval is not run."""
        turn = self._turn
        if turn is not None:
            turn.request_stop()
            self._stop_tools()

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """A view's state update. Kernel-only traits (`auto_approve`, `agent`) are dropped: page script can
        write any synced trait, so a view never turns on auto-approval; the views are sent the real value."""
        dropped = [k for k in KERNEL_ONLY if k in sync_data]
        if dropped:
            sync_data = {k: v for k, v in sync_data.items() if k not in KERNEL_ONLY}
        super().set_state(sync_data)
        if dropped:
            self.send_state(dropped)

    def retry(self) -> AskHandle:
        """Ask the last question again, replacing its answer."""
        self._conv.begin_or_raise()
        msgs = self._conv.messages
        last_user = last_user_index(msgs)
        if last_user is None:
            self._conv.end_turn()
            raise ErnieError("没有可以重试的问题 / there is no question to retry")
        return self._start_turn(lambda: self._conv.truncate(last_user + 1))

    def continue_answer(self) -> AskHandle:
        """Continue an answer cut by the length limit (ERNIE's `is_truncated`): asks "继续"."""
        last = self._conv.last_answer()
        if last is None or not last.get("truncated"):
            raise ErnieError("上一个回答没有被截断 / the last answer was not cut off")
        return self.ask("继续")

    def clear(self) -> None:
        """Forget the conversation (an answer of this widget in flight is stopped first)."""
        self._stop_and_wait()
        if self._conv.busy:
            raise self._conv.busy_error()
        self._conv.clear()

    def delete(self, index: int) -> None:
        """Delete the exchange (question and answer) that contains ``messages[index]``; `undo_delete` brings it back."""
        if self._conv.busy:
            raise self._conv.busy_error()
        start, removed = self._conv.delete_turn(index)
        if removed:
            self._deleted = (start, removed, len(self._conv))
            self._emit({"type": "deleted", "index": start, "count": len(removed)})

    def undo_delete(self) -> bool:
        """Restore the exchange deleted last, if nothing changed since (True when it was restored)."""
        deleted, self._deleted = self._deleted, None
        if deleted is None or self._conv.busy:
            return False
        return self._conv.restore(*deleted)

    def edit_last(self, text: str) -> AskHandle:
        """Replace the last question with *text* and ask again (stops an answer in flight first)."""
        if not isinstance(text, str) or not text.strip():
            raise ErnieError("问题不能为空 / the question is empty")
        self._stop_and_wait()
        self._conv.begin_or_raise()
        last_user = last_user_index(self._conv.messages)

        def change() -> None:
            if last_user is not None:
                self._conv.truncate(last_user)
            self._conv.append({"role": "user", "content": text})

        return self._start_turn(change)

    def on_reply(self, callback: Callable[[dict[str, Any]], Any]) -> None:
        """Call *callback(answer_dict)* after every finished answer (on the stream thread; keep it short)."""
        self._reply_callbacks.append(callback)

    @property
    def code_blocks(self) -> list[str]:
        """The code blocks of the last answer, in order (numbered 1… in the UI)."""
        from .render import extract_code_blocks

        last = self._conv.last_answer()
        if not last or last.get("withdrawn"):
            return []
        return [code for _lang, code in extract_code_blocks(last.get("content", ""))]

    def to_markdown(self) -> str:
        """The conversation as markdown (questions marked, answers as written, labelled with their model)."""
        return conversation_markdown(self._conv.messages)

    def transcript(self) -> Transcript:
        """A static copy for GitHub/nbviewer: sanitized HTML plus the markdown as text/plain."""
        return Transcript(self.to_markdown())

    def __repr__(self) -> str:
        provider = getattr(self._client, "provider", "custom") if self._backend is None else "custom"
        turns = sum(1 for m in self.messages if m.get("role") == "user")
        return f"ErnieChat(provider={provider!r}, thread={self.thread!r}, turns={turns}, status={self.status!r})"

    def close(self) -> None:
        """Close the widget; an answer in flight is stopped and its connection closed."""
        if not hasattr(self, "_context"):  # the constructor raised
            super().close()
            return
        self.stop()
        self._close_tools()
        self._conv.unsubscribe(self._on_conversation_change)
        self._context.close()
        super().close()

    # -- the turn --------------------------------------------------------------------------------

    def _offline_model(self) -> str | None:
        """The GGUF file name when the embedded offline model answers, else None."""
        if self._backend is not None or getattr(self._client, "provider", "") != "local":
            return None
        return pathlib.Path(str(self._model or getattr(self._client, "model", "") or "offline model")).name

    def _label(self) -> str:
        if self._backend is not None:
            name = str(getattr(self._backend, "__name__", ""))
            return name if name.isidentifier() else "custom backend"  # a lambda's name is "<lambda>"
        provider = getattr(self._client, "provider", "")
        offline = self._offline_model()
        if offline is not None:
            return f"离线模型 offline · {offline}"
        model = self._model or getattr(self._client, "model", "") or ""
        if is_gguf(model):
            model = pathlib.Path(model).name
        return f"{provider} · {model}" if provider else str(model)

    def _stop_and_wait(self, timeout: float = 3.0) -> None:
        """Stop this widget's answer and wait until it is stored (not on the loop thread: that would deadlock)."""
        turn = self._turn
        if turn is None:
            return
        turn.request_stop()
        if turn.run is not None and not in_background_loop():
            try:
                turn.run.result(timeout)
            except BaseException:  # the answer's own outcome does not matter here
                pass

    def _start_turn(self, change: Callable[[], Any]) -> AskHandle:
        """Apply *change* to the conversation and start streaming. The caller holds the turn lock."""
        try:
            mid = next(_mids)
            with self._state_lock, self.hold_sync():  # messages + status in one update message
                change()
                self.status = "streaming"
            history = self._conv.history()
            turn = Turn(mid, DeltaBatcher(self._emit, mid, clock=self._frames))
            self._turn = turn
            start: dict[str, Any] = {"type": "start", "mid": mid}
            if self._host:
                start["host"] = self._host
            self._emit(start)
            system = self._system_prompt()
            run: Handoff[None, StoredMessage] = Handoff(lambda _channel: self._run_turn(turn, history, system))
            turn.run = run
        except BaseException:
            self._conv.end_turn()
            with self._state_lock:
                self.status = "idle"
            raise
        return AskHandle(run, self.stop)

    def _emit(self, msg: dict[str, Any]) -> None:
        try:
            self.send(msg)
        except Exception:  # a closed comm must not break the stream
            logger.debug("widget send failed", exc_info=True)

    def _system_prompt(self) -> str | None:
        """The chat's system prompt, plus (``context="auto"``) the variable list, read now on the main thread."""
        if self.context != "auto":
            return self._system
        summary = self._context.auto_summary(self.context_budget)
        return "\n\n".join(p for p in (self._system, summary) if p) or None

    def _reads_images(self) -> bool:
        from .client import model_info

        return model_info(self._model or getattr(self._client, "model", None)).vision

    async def _events(self, history: list[dict[str, Any]], system: str | None,
                      turn: Turn | None = None) -> AsyncIterator[tuple[str, Any]]:
        """(kind, value) pairs from the client or a custom backend."""
        if self._backend is not None:
            async for text in backend_texts(self._backend, history):
                yield "text", text
            return
        aio = getattr(self._client, "aio", self._client)
        model = None if not self._model or is_gguf(self._model) else self._model
        search = {"web_search": True} if self.web_search else {}  # the client spells it per surface
        if self._tools is not None and turn is not None:
            async for pair in self._tools.events(aio, history, turn, model=model, system=system,
                                                 temperature=self._temperature, max_tokens=self._max_tokens, **search):
                yield pair
            return
        stream = aio.stream(history, model=model, system=system, temperature=self._temperature,
                            max_tokens=self._max_tokens, **search)
        async with stream:  # leaving it (also on cancel) closes the HTTP response
            async for ev in stream:
                if (kind_value := chat_pair(ev)) is not None:
                    yield kind_value
            yield "reply", stream.reply

    async def _run_turn(self, turn: Turn, history: list[dict[str, Any]], system: str | None) -> StoredMessage:
        mid, batcher = turn.mid, turn.batcher
        task = asyncio.current_task()
        assert task is not None
        answer: StoredMessage = {"role": "assistant", "content": "", "mid": mid, "status": "ok"}
        notices: list[str] = []
        started = time.monotonic()
        first: float | None = None
        pieces = 0

        def notice(text: str) -> None:
            notices.append(text)
            self._emit({"type": "notice", "text": text})

        def withdraw() -> None:
            if not answer.get("withdrawn"):
                answer["withdrawn"] = True
                self._emit({"type": "withdraw", "mid": mid, "notice": WITHDRAWN_NOTICE})

        try:
            if not turn.attach(task):
                raise asyncio.CancelledError
            async for kind, value in self._events(history, system, turn):
                if kind in ("text", "reasoning"):
                    if answer.get("withdrawn"):
                        continue  # never show more of an answer that was withdrawn
                    first = first or time.monotonic()
                    pieces += 1
                    batcher.add(**{kind: value})
                elif kind == "sources" and not answer.get("withdrawn") and (msg := turn.add_sources(value)):
                    self._emit(msg)
                elif kind == "safety":
                    if value.need_clear_history:
                        answer["excluded"] = True
                        self._conv.exclude_before(len(self._conv), notify=False)
                        notice(CLEARED_NOTICE)
                    if value.withdraws_text:
                        withdraw()
                elif kind == "notice":
                    notice(value)
                elif kind == "reply" and value is not None:
                    merge_reply(answer, value)
                    if value.trimmed_turns:
                        notice(f"历史过长，已省略最早的 {value.trimmed_turns} 条消息 / the history was too "
                               f"long: the oldest {value.trimmed_turns} messages were left out")
        except asyncio.CancelledError:
            answer["status"] = "stopped"
            task.uncancel()  # the stop is handled: the turn ends normally with what it has
        except ContentFilterError as err:  # flag 3: the text must not be displayed
            answer["status"], answer["error"] = "error", str(err)
            withdraw()
        except (AuthenticationError, PermissionDeniedError) as err:
            # Retry cannot help with a wrong key: say how to give this chat one instead
            answer["status"], answer["error_kind"] = "error", "auth"
            answer["error"] = (f"{err} — 设置密钥 / set a key: QIANFAN_API_KEY=… (or ErnieChat(Ernie(api_key=…))), "
                               "then run this cell again; %ernie --doctor checks it")
        except ErnieError as err:
            answer["status"], answer["error"] = "error", str(err)
        except Exception as err:  # a custom backend's bug: show it, keep the conversation
            logger.debug("backend failed", exc_info=True)
            answer["status"] = "error"
            answer["error"] = f"后端出错 / the backend failed: {type(err).__name__}: {err}"
        finally:
            batcher.close()
        answer["content"] = WITHDRAWN_NOTICE if answer.get("withdrawn") else "".join(batcher.text)[turn.text_start:]
        if batcher.reasoning and not answer.get("withdrawn"):
            answer["reasoning"] = "".join(batcher.reasoning)
        turn.store_sources(answer)
        if "metrics" not in answer:
            answer["metrics"] = {"ttft_ms": None if first is None else round((first - started) * 1000, 1),
                                 "duration_ms": round((time.monotonic() - started) * 1000, 1), "chunks": pieces}
        if notices:
            answer["notice"] = "\n".join(notices)
        self._finish_turn(turn, answer)
        return answer

    def _finish_turn(self, turn: Turn, answer: StoredMessage) -> None:
        """Store the answer (the one trait write for it), release the conversation, tell the front end."""
        try:
            with self._state_lock, self.hold_sync():
                for step in turn.transcript:  # agent mode: the rounds' tool calls and results, then the answer
                    self._conv.append(step)
                self._conv.append(answer)
                self.status = "idle"
        finally:
            if self._turn is turn:
                self._turn = None
            self._conv.end_turn()
        done: dict[str, Any] = {"type": "done", "mid": turn.mid, "status": answer["status"]}
        if "error" in answer:
            done["error"] = answer["error"]
        self._emit(done)
        for cb in list(self._reply_callbacks):
            try:
                cb(public_message(answer))
            except Exception:
                logger.exception("on_reply callback failed")

    # -- front end and conversation events -------------------------------------------------------

    def _sync_messages(self) -> None:
        msgs = [public_message(m) for m in self._conv.messages]
        with self._state_lock:
            self.messages = msgs

    def _on_conversation_change(self, _conv: Conversation) -> None:
        self._sync_messages()

    def _on_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # May run on the main thread or a subshell thread: keep it short and hand work to the loop.
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        try:
            if kind == "ask":
                images = [u for u in content.get("images") or []
                          if isinstance(u, str) and u.startswith(_IMAGE_URL_PREFIXES)]
                chips = [c for c in content.get("mentions") or [] if isinstance(c, int) and not isinstance(c, bool)]
                self.ask(str(content.get("text", "")), images=images or None, mentions=list(chips) or None)
            elif kind == "variables":
                self._context.on_variables(int(content.get("rid", 0)), str(content.get("prefix", ""))[:100])
            elif kind == "mention":
                self._context.on_mention(int(content.get("rid", 0)), str(content.get("name", ""))[:200])
            elif kind == "unmention":
                self._context.on_unmention(int(content.get("cid", 0)))
            elif kind == "stop":
                self.stop()
            elif kind == "retry":
                self.retry()
            elif kind == "clear":
                self.clear()
            elif kind == "continue":
                self.continue_answer()
            elif kind == "delete":
                self.delete(int(content.get("index", -1)))
            elif kind == "undo_delete":
                if not self.undo_delete():
                    self._emit({"type": "notice", "text": "无法撤销：对话已改变 / cannot undo: the conversation changed"})
            elif kind == "edit":
                self.edit_last(str(content.get("text", "")))
            elif kind == "approve":
                problem = self._require_tools().on_view_approve(content)
                if problem:
                    self._emit({"type": "notice", "text": problem})
            elif kind == "frame_timing":
                report = parse_frame_report(content)
                if report is not None:
                    background_loop().call_soon_threadsafe(self._on_frame_report, report)
            elif kind in ("hello", "resync"):
                background_loop().call_soon_threadsafe(self._send_resync)
                if kind == "hello":
                    self._context.on_hello()
        except ErnieError as err:  # ThreadBusyError included: tell the user, do not raise into the kernel
            self._emit({"type": "notice", "text": err.message})
        except (TypeError, ValueError) as err:
            self._emit({"type": "notice", "text": f"无效的请求 / invalid request from the front end: {err}"})

    def _on_frame_report(self, report: FrameReport) -> None:
        """On the loop thread (where the batcher lives): tune the flush grid to the page's frames."""
        turn = self._turn
        if turn is not None:
            turn.batcher.on_frame_report(report)

    def _send_resync(self) -> None:
        """On the loop thread (where the batcher lives): the in-flight answer, for a (re)connecting view."""
        turn = self._turn
        if turn is not None:
            self._emit(turn.batcher.snapshot())
            if turn.sources:
                self._emit(turn.sources_message())
            for step in list(turn.steps.values()):
                self._emit(step)
