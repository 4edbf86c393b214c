"""`ErnieChat`: the streaming chat widget. Traits, the delta protocol, no HTTP.

State: the transcript lives in the `messages` trait, written once per turn. The answer in flight
travels as custom messages `{"type": "delta", "mid", "seq", "text", "reasoning"}` coalesced every
40 ms (notebook-platform.md §0, §6). Streams run on the package's private loop, so the kernel never
blocks and Stop works while the shell is idle.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import itertools
import logging
import pathlib
import threading
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import anywidget
import traitlets

from ._loop import background_loop, submit
from .batcher import DeltaBatcher
from .client.errors import ErnieError
from .client.messages import image as image_part
from .threads import Conversation, ThreadBusyError, get_thread

__all__ = ["AskHandle", "ErnieChat"]

logger = logging.getLogger("ernie_widget")

STATIC = pathlib.Path(__file__).parent / "static"
_FALLBACK_ESM = """
export default { render({ el }) {
  el.textContent = "ernie-widget: the front end is not built. Run `npm install && npm run build` " +
    "in the source tree, or install a released wheel.";
} };
"""

_mids = itertools.count(1)

Backend = Callable[[list[dict[str, Any]]], Any]


class AskHandle:
    """A turn in flight: ``await handle`` in a cell, ``handle.wait()`` in scripts; both give the answer dict."""

    def __init__(self, future: concurrent.futures.Future[dict[str, Any]], chat: ErnieChat) -> None:
        self._future = future
        self._chat = chat

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the answer is complete (a KeyboardInterrupt stops it) and return it."""
        try:
            return self._future.result(timeout)
        except KeyboardInterrupt:
            self._chat.stop()
            raise

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> None:
        self._chat.stop()

    def __await__(self) -> Generator[Any, None, dict[str, Any]]:
        return asyncio.wrap_future(self._future).__await__()

    def __repr__(self) -> str:
        return f"<AskHandle {'done' if self.done() else 'streaming'}>"


class ErnieChat(anywidget.AnyWidget):
    """A chat with ERNIE (or any model) inside the notebook.

    >>> chat = ErnieChat()                     # Ernie() from the environment, or the offline model
    >>> chat                                   # doctest: +SKIP
    >>> await chat.ask("用一句话介绍你自己")     # doctest: +SKIP
    """

    _esm = STATIC / "widget.js" if (STATIC / "widget.js").is_file() else _FALLBACK_ESM
    _css = STATIC / "widget.css" if (STATIC / "widget.css").is_file() else ""

    messages: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)
    lang = traitlets.Unicode("auto").tag(sync=True)
    send_mode = traitlets.Unicode("enter").tag(sync=True)
    model_label = traitlets.Unicode("").tag(sync=True)
    placeholder = traitlets.Unicode("").tag(sync=True)

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
        **kwargs: Any,
    ) -> None:
        if backend is None and client is None:
            from .client import Ernie

            client = Ernie(model=model) if model and not model.endswith(".gguf") else Ernie()
        self._client = client
        self._backend = backend
        self._model = model
        self._system = system
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._conv: Conversation = get_thread(thread, store=store)
        self._state_lock = threading.Lock()
        self._future: concurrent.futures.Future[dict[str, Any]] | None = None
        self._batcher: DeltaBatcher | None = None
        self._reply_callbacks: list[Callable[[dict[str, Any]], Any]] = []
        label = self._label()
        super().__init__(lang=lang, send_mode=send_mode, model_label=label, **kwargs)
        self._sync_messages()
        self._conv.subscribe(self._on_conversation_change)
        self.on_msg(self._on_custom)

    # -- public API ------------------------------------------------------------------------------

    @property
    def thread(self) -> str | None:
        return self._conv.name

    @property
    def client(self) -> Any:
        return self._client

    def ask(self, text: str, images: list[Any] | None = None) -> AskHandle:
        """Send *text* (optionally with images for vision models). Returns at once; the answer streams."""
        if not isinstance(text, str) or not text.strip():
            raise ErnieError("问题不能为空 / the question is empty")
        self._conv.begin_or_raise()
        try:
            user: dict[str, Any] = {"role": "user", "content": text}
            if images:
                user["images"] = [image_part(x)["image_url"]["url"] for x in images]
            self._conv.append(user)
            return self._start_turn(self._conv.history())
        except BaseException:
            self._conv.end_turn()
            raise

    def stop(self) -> None:
        """Stop the answer in flight; its partial text is kept."""
        future = self._future
        if future is not None and not future.done():
            future.cancel()

    def retry(self) -> AskHandle:
        """Ask the last question again, replacing its answer."""
        self._conv.begin_or_raise()
        try:
            msgs = self._conv.messages
            last_user = max((i for i, m in enumerate(msgs) if m["role"] == "user"), default=None)
            if last_user is None:
                raise ErnieError("没有可以重试的问题 / there is no question to retry")
            self._conv.truncate(last_user + 1)
            return self._start_turn(self._conv.history())
        except BaseException:
            self._conv.end_turn()
            raise

    def continue_answer(self) -> AskHandle:
        """Continue an answer cut by the length limit (ERNIE's `is_truncated`)."""
        last = self._conv.last_answer()
        if last is None or not last.get("truncated"):
            raise ErnieError("上一个回答没有被截断 / the last answer was not cut off")
        return self.ask("继续")

    def clear(self) -> None:
        """Forget the conversation (stops an answer in flight)."""
        self.stop()
        self._conv.clear()

    def edit_last(self, text: str) -> AskHandle:
        """Replace the last question with *text* and ask again."""
        self.stop()
        msgs = self._conv.messages
        last_user = max((i for i, m in enumerate(msgs) if m["role"] == "user"), default=None)
        if last_user is not None:
            self._conv.truncate(last_user)
        return self.ask(text)

    def on_reply(self, callback: Callable[[dict[str, Any]], Any]) -> None:
        """Call *callback(answer_dict)* after every finished answer (on the stream thread)."""
        self._reply_callbacks.append(callback)

    @property
    def code_blocks(self) -> list[str]:
        """The code blocks of the last answer, in order (numbered 1… in the UI)."""
        from .render import extract_code_blocks

        last = self._conv.last_answer()
        return [code for _lang, code in extract_code_blocks(last["content"])] if last else []

    def to_markdown(self) -> str:
        """The conversation as markdown (questions quoted, answers as written)."""
        parts = []
        for m in self._conv.messages:
            if m["role"] == "user":
                parts.append("**You:** " + m.get("content", ""))
            else:
                body = "*(withdrawn)*" if m.get("withdrawn") else m.get("content", "")
                if m.get("error"):
                    body += f"\n\n> ⚠ {m['error']}"
                parts.append("**ERNIE:**\n\n" + body)
        return "\n\n---\n\n".join(parts)

    def transcript(self) -> Transcript:
        """A static copy for GitHub/nbviewer: sanitized HTML plus the markdown as text/plain."""
        return Transcript(self.to_markdown())

    def __repr__(self) -> str:
        provider = getattr(self._client, "provider", "custom") if self._backend is None else "custom"
        return (f"ErnieChat(provider={provider!r}, thread={self.thread!r}, "
                f"turns={sum(1 for m in self.messages if m.get('role') == 'user')}, status={self.status!r})")

    def close(self) -> None:
        """Close the widget; a stream in flight is cancelled."""
        self.stop()
        self._conv.unsubscribe(self._on_conversation_change)
        super().close()

    # -- the turn --------------------------------------------------------------------------------

    def _label(self) -> str:
        if self._backend is not None:
            return getattr(self._backend, "__name__", "custom")
        provider = getattr(self._client, "provider", "")
        model = self._model or getattr(self._client, "model", "") or ""
        if model and model.endswith(".gguf"):
            model = pathlib.Path(model).name
        return f"{provider} · {model}" if provider else str(model)

    def _start_turn(self, history: list[dict[str, Any]]) -> AskHandle:
        mid = next(_mids)
        with self._state_lock:
            self.status = "streaming"
        self._send({"type": "start", "mid": mid})
        future = submit(self._run_turn(mid, history))
        self._future = future
        return AskHandle(future, self)

    def _send(self, msg: dict[str, Any]) -> None:
        try:
            self.send(msg)
        except Exception:  # a closed comm must not break the stream
            logger.debug("widget send failed", exc_info=True)

    async def _events(self, history: list[dict[str, Any]]) -> AsyncIterator[tuple[str, Any]]:
        """(kind, value) pairs from the client or a custom backend."""
        if self._backend is not None:
            async for text in _backend_texts(self._backend, history):
                yield "text", text
            return
        client = self._client
        aio = getattr(client, "aio", client)
        stream = aio.stream(history, model=self._model if not (self._model or "").endswith(".gguf") else None,
                            system=self._system, temperature=self._temperature, max_tokens=self._max_tokens)
        async with stream:
            async for ev in stream:
                if ev.type in ("text", "reasoning"):
                    yield ev.type, ev.text
                elif ev.type == "safety":
                    yield "safety", ev.safety
            yield "reply", stream.reply

    async def _run_turn(self, mid: int, history: list[dict[str, Any]]) -> dict[str, Any]:
        batcher = DeltaBatcher(self._send, mid)
        self._batcher = batcher
        answer: dict[str, Any] = {"role": "assistant", "content": "", "mid": mid, "status": "ok"}
        notice = None
        try:
            async for kind, value in self._events(history):
                if kind == "text":
                    batcher.add(text=value)
                elif kind == "reasoning":
                    batcher.add(reasoning=value)
                elif kind == "safety" and value is not None:
                    if value.need_clear_history:
                        self._conv.exclude_before(len(self._conv))
                        notice = "因安全原因已清除之前的对话 / earlier turns were cleared for safety"
                        self._send({"type": "notice", "text": notice})
                    if value.withdraws_text:
                        answer["withdrawn"] = True
                        self._send({"type": "withdraw", "mid": mid,
                                    "notice": "该回答已被撤回 / this answer was withdrawn for safety"})
                elif kind == "reply" and value is not None:
                    reply = value
                    if reply.usage:
                        answer["usage"] = reply.usage.to_dict()
                    answer["metrics"] = reply.metrics.to_dict()
                    answer["finish_reason"] = reply.finish_reason
                    if reply.truncated:
                        answer["truncated"] = True
                    if reply.model:
                        answer["model"] = reply.model
                    if reply.request_id:
                        answer["request_id"] = reply.request_id
                    if reply.trimmed_turns:
                        notice = (f"历史过长，已省略最早的 {reply.trimmed_turns} 条消息 / the history was too long: "
                                  f"the oldest {reply.trimmed_turns} messages were left out")
                        self._send({"type": "notice", "text": notice})
        except asyncio.CancelledError:
            answer["status"] = "stopped"
        except ErnieError as err:
            answer["status"] = "error"
            answer["error"] = str(err)
        except Exception as err:  # a custom backend's bug: show it, keep the conversation
            answer["status"] = "error"
            answer["error"] = f"后端出错 / the backend failed: {type(err).__name__}: {err}"
        finally:
            batcher.close()
            self._batcher = None
            answer["content"] = "".join(batcher.text)
            if batcher.reasoning:
                answer["reasoning"] = "".join(batcher.reasoning)
            if answer.get("withdrawn"):
                answer["content"] = ""
            if notice:
                answer["notice"] = notice
            self._conv.append(answer)
            with self._state_lock:
                self.status = "idle"
            done: dict[str, Any] = {"type": "done", "mid": mid, "status": answer["status"]}
            if "error" in answer:
                done["error"] = answer["error"]
            self._send(done)
            self._conv.end_turn()
            for cb in list(self._reply_callbacks):
                try:
                    cb(dict(answer))
                except Exception:
                    logger.exception("on_reply callback failed")
        return answer

    # -- front end and conversation events -------------------------------------------------------

    def _sync_messages(self) -> None:
        msgs = [_public(m) for m in self._conv.messages]
        with self._state_lock:
            self.messages = msgs

    def _on_conversation_change(self, _conv: Conversation) -> None:
        self._sync_messages()

    def _on_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # May run on the main thread or a subshell thread: keep it tiny and hand work to the loop.
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        try:
            if kind == "ask":
                images = [u for u in content.get("images") or [] if isinstance(u, str) and u.startswith("data:image/")]
                self.ask(str(content.get("text", "")), images=images or None)
            elif kind == "stop":
                self.stop()
            elif kind == "retry":
                self.retry()
            elif kind == "clear":
                self.clear()
            elif kind == "continue":
                self.continue_answer()
            elif kind == "delete":
                if not self._conv.busy:
                    self._conv.delete_turn(int(content.get("index", -1)))
            elif kind == "edit":
                self.edit_last(str(content.get("text", "")))
            elif kind in ("hello", "resync"):
                background_loop().call_soon_threadsafe(self._send_resync)
        except ThreadBusyError as err:
            self._send({"type": "notice", "text": err.message})
        except ErnieError as err:
            self._send({"type": "notice", "text": err.message})

    def _send_resync(self) -> None:
        """On the loop thread: the in-flight buffer, so a reloaded view shows the partial answer."""
        batcher = self._batcher
        if batcher is not None:
            self._send(batcher.snapshot())


def _public(m: dict[str, Any]) -> dict[str, Any]:
    """What the front end may see of a message (no internal flags)."""
    return {k: v for k, v in m.items() if k != "excluded"}


async def _backend_texts(backend: Backend, history: list[dict[str, Any]]) -> AsyncIterator[str]:
    """Adapt any callable, generator or async generator into an async stream of text pieces."""
    result = backend(history)
    if inspect.isawaitable(result):
        result = await result
    if isinstance(result, str):
        yield result
        return
    if hasattr(result, "__aiter__"):
        async for piece in result:
            yield str(piece)
        return
    # a sync generator: run each step in a worker thread so a slow model never blocks the loop
    iterator = iter(result)
    loop = asyncio.get_running_loop()
    sentinel = object()
    try:
        while True:
            piece = await loop.run_in_executor(None, next, iterator, sentinel)
            if piece is sentinel:
                return
            yield str(piece)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


class Transcript:
    """A static, sanitized copy of a chat for saved notebooks."""

    def __init__(self, markdown: str) -> None:
        self.markdown = markdown

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .render import render_markdown

        return {"text/html": f'<div class="ernie-transcript">{render_markdown(self.markdown)}</div>',
                "text/plain": self.markdown}

    def __repr__(self) -> str:
        return self.markdown


