"""How one `%%ernie` answer reaches the cell's output: streamed on the private loop, drawn on the cell's thread.

The text is rendered in the kernel (`render.bundle`: sanitized HTML) and redrawn through one display id at most
every ``update_interval`` seconds, and never more often than twice the last update's render time (a slow render
cannot keep the kernel busy). While streaming, a markdown answer is rendered incrementally (finished blocks once,
`render_stream.StreamRenderer`); the final display is a whole render and carries the answer's provenance in its
metadata. Web sources (``--search``) are drawn under the answer as soon as they arrive. An interrupt (Ctrl+C, "Interrupt kernel") cancels the request and keeps the partial answer.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from IPython.display import display

from .client.errors import ContentFilterError, ErnieError
from .client.handoff import Channel, Handoff, Signal
from .conversations import WITHDRAWN_NOTICE
from .protocol import StoredMessage, merge_reply, web_sources

__all__ = ["Outcome", "provenance", "stream_answer"]


@dataclass
class Outcome:
    """How one answer ended: its text, the `Reply` (on success), the error, whether it was interrupted."""

    text: str = ""
    reply: Any = None
    error: ErnieError | None = None
    interrupted: bool = False
    withdrawn: bool = False
    #: web sources (`protocol.web_sources`): what streamed, merged with what the reply names
    sources: list[dict[str, Any]] = field(default_factory=list)

    def answer(self) -> StoredMessage:
        """The assistant message stored in the thread (stored as the widget stores its answers)."""
        answer: StoredMessage = {"role": "assistant", "content": self.text, "status": "ok"}
        reply = self.reply
        if reply is not None:
            merge_reply(answer, reply)
            if reply.reasoning:
                answer["reasoning"] = reply.reasoning
            if reply.safety is not None and reply.safety.need_clear_history:
                answer["excluded"] = True
        if self.sources:
            answer["search_results"] = self.sources
        if self.error is not None:
            answer["status"], answer["error"] = "error", str(self.error)
        if self.interrupted:
            answer["status"] = "stopped"
        if self.withdrawn:
            answer["content"], answer["withdrawn"] = WITHDRAWN_NOTICE, True
            answer.pop("reasoning", None)
            answer.pop("search_results", None)
        return answer


def stream_answer(client: Any, messages: list[dict[str, Any]], params: dict[str, Any], fmt: str, *,
                  streaming: bool, trust_html: bool, update_interval: float) -> Outcome:
    """Stream on the private loop, render on this thread; an interrupt cancels the request."""
    from .render import bundle
    from .render_stream import StreamRenderer

    aio = client.aio

    async def pump(channel: Channel[str | tuple[dict[str, Any], ...]]) -> Any:
        stream = aio.stream(messages, **params)
        async with stream:  # leaving it (also on cancel) closes the HTTP response
            async for ev in stream:
                if ev.type == "text":
                    channel.put(ev.text)
                elif ev.type == "search_results" and ev.results:
                    channel.put(ev.results)
            return stream.reply

    parts: list[str] = []
    out = Outcome()
    handle = None
    last = 0.0
    wait = update_interval
    dirty = False
    incremental = StreamRenderer() if fmt in ("markdown", "md") else None
    answer: Handoff[str | tuple[dict[str, Any], ...], Any] = Handoff(pump)
    try:  # from here on an interrupt, wherever it lands, cancels the request
        if streaming:
            handle = display(bundle("", fmt, trust_html=trust_html, streaming=True), raw=True,
                             display_id=True)
        while True:
            item = answer.get(timeout=update_interval)
            if item is Signal.DONE:
                break
            if isinstance(item, tuple):
                # ERNIE may send the list in the first and again in the last chunk: merged, never doubled
                out.sources = web_sources([*out.sources, *item])
                dirty = True
            elif item is not Signal.IDLE:
                parts.append(item)
                dirty = True
            now = time.monotonic()
            if handle is not None and dirty and now - last >= wait:
                text = "".join(parts)
                rendered = incremental.render(text, out.sources) if incremental is not None else None
                handle.update(bundle(text, fmt, trust_html=trust_html, streaming=True, sources=out.sources,
                                     rendered=rendered), raw=True)
                done = time.monotonic()
                last, dirty, wait = done, False, max(update_interval, 2 * (done - now))
    except KeyboardInterrupt:
        out.interrupted = True
        # wait (briefly) until the pump has closed the response, so no socket is left behind
        answer.cancel(wait=2.0)
    out.text = "".join(parts)
    if not out.interrupted:
        try:
            out.reply = answer.result()
        except ErnieError as err:
            out.error = err
            out.text = err.partial_text or out.text
    if out.reply is not None:
        out.text = out.reply.text
        out.sources = web_sources([*out.sources, *out.reply.search_results])
    out.withdrawn = isinstance(out.error, ContentFilterError) or bool(
        out.reply is not None and out.reply.safety is not None and out.reply.safety.withdraws_text)
    shown = WITHDRAWN_NOTICE if out.withdrawn else out.text
    final = bundle(shown, "text" if out.withdrawn else fmt, trust_html=trust_html, streaming=False,
                   sources=None if out.withdrawn else out.sources)
    meta = {"ernie_widget": provenance(client, out.reply)}
    if handle is not None:
        handle.update(final, raw=True, metadata=meta)
    elif shown or out.error is None:
        display(final, raw=True, metadata=meta)
    if out.interrupted:
        print("已中断，保留了部分回答 / interrupted: the partial answer is kept", file=sys.stderr)
    elif out.reply is not None and out.reply.truncated and not out.withdrawn:
        print("回答因长度限制被截断 / the answer was cut off at the length limit: raise --max-tokens, or ask "
              "「继续」/ 'continue' with --thread", file=sys.stderr)
    return out


def provenance(client: Any, reply: Any) -> dict[str, Any]:
    """Where an output came from: recorded in the output's metadata."""
    return {"provider": client.provider, "model": (reply.model if reply is not None else None) or client.model,
            "request_id": reply.request_id if reply is not None else None,
            "usage": reply.usage.to_dict() if reply is not None and reply.usage else None,
            "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
