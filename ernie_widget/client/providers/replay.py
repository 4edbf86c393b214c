"""Record and replay: answers saved to a JSONL "cassette" and served back offline, deterministically.

Record with any provider: ``ERNIE_CASSETTE=answers.jsonl ERNIE_CASSETTE_MODE=record`` (the client
wraps every stream in a `CassetteRecorder`). Replay without a key or network:
``Ernie(provider="replay", cassette="answers.jsonl")`` or ``ERNIE_CASSETTE_MODE=replay``.

One line per completed request::

    {"key": sha256 of the normalized request,
     "request": {"messages": [...], "params": {...}},
     "events": [{"t": seconds since the request started, "type": "text", "text": "…", ...}, ...],
     "reply": {"model": ..., "request_id": ...}, "provider": "qianfan", "recorded_at": "2025-…Z"}

The key covers the messages (image data replaced by its hash) and the non-None call parameters,
not the client's default model: a notebook recorded against ERNIE replays under ``provider="replay"``,
which cannot know that model. Keys and tokens never reach the file: no headers or configuration
are written, and every string goes through `redact` on the way out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import BadRequestError, ConfigurationError
from ..events import Safety, StreamEvent, ToolCall, ToolCallDelta, Usage
from ..messages import text_of
from ..redact import redact
from .base import DirectProvider

if TYPE_CHECKING:
    from ..config import ProviderConfig
    from ..messages import Message

__all__ = ["CassetteMissError", "CassetteRecorder", "ReplayProvider", "load_cassette", "request_key"]

logger = logging.getLogger("ernie_widget")


class CassetteMissError(BadRequestError):
    """The request was never recorded in the cassette being replayed."""


# -- the request key -------------------------------------------------------------------------------


def _normal_content(content: Any) -> Any:
    if not isinstance(content, list):
        return text_of(content)
    parts: list[Any] = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, Mapping) else str(image or "")
            # a data URL can be megabytes: its hash identifies the image as well
            parts.append({"type": "image_url", "sha256": hashlib.sha256(url.encode()).hexdigest()})
        elif isinstance(part, Mapping):
            parts.append(dict(part))
        else:
            parts.append(str(part))
    return parts


def normalize_request(messages: list[Message], params: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What identifies a request: its messages (images hashed) and its non-None parameters, sorted."""
    norm_messages = []
    for m in messages:
        item: dict[str, Any] = {"role": m.get("role"), "content": _normal_content(m.get("content"))}
        for key in ("name", "tool_calls", "tool_call_id"):
            if key in m:
                item[key] = m[key]
        norm_messages.append(item)
    norm_params = {k: params[k] for k in sorted(params) if params[k] is not None}
    return norm_messages, norm_params


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def request_key(messages: list[Message], params: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the normalized request."""
    norm_messages, norm_params = normalize_request(messages, params)
    data = _canonical({"messages": norm_messages, "params": norm_params})
    return hashlib.sha256(data.encode()).hexdigest()


def _last_user_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if isinstance(m, Mapping) and m.get("role") == "user":
            return text_of(m.get("content"))
    return ""


# -- events <-> JSON -------------------------------------------------------------------------------


def _event_record(ev: StreamEvent, t: float) -> dict[str, Any]:
    rec: dict[str, Any] = {"t": round(t, 4), "type": ev.type}
    if ev.text:
        rec["text"] = ev.text
    if ev.usage is not None:
        rec["usage"] = ev.usage.to_dict()
    if ev.finish_reason is not None:
        rec["finish_reason"] = ev.finish_reason
    if ev.safety is not None:
        rec["safety"] = ev.safety.to_dict()
    if ev.results is not None:
        rec["results"] = list(ev.results)
    if ev.request_id is not None:
        rec["request_id"] = ev.request_id
    if ev.model is not None:
        rec["model"] = ev.model
    if ev.tool_call is not None:
        rec["tool_call"] = dataclasses.asdict(ev.tool_call)
    return rec


def _tool_call_from_record(rec: Any) -> ToolCall | ToolCallDelta | None:
    if not isinstance(rec, Mapping):
        return None
    if "index" in rec:  # a fragment
        return ToolCallDelta(int(rec.get("index", 0)), rec.get("id"), rec.get("name"), rec.get("arguments") or "")
    return ToolCall(str(rec.get("id") or ""), str(rec.get("name") or ""), rec.get("arguments") or "",
                    rec.get("parsed"), rec.get("error"), rec.get("thoughts"))


def _event_from_record(rec: Mapping[str, Any]) -> StreamEvent:
    safety = rec.get("safety")
    results = rec.get("results")
    return StreamEvent(
        rec["type"],
        text=rec.get("text") or "",
        usage=Usage.from_dict(rec.get("usage")),
        finish_reason=rec.get("finish_reason"),
        safety=Safety(**safety) if isinstance(safety, Mapping) else None,
        results=tuple(results) if isinstance(results, list) else None,
        request_id=rec.get("request_id"),
        model=rec.get("model"),
        tool_call=_tool_call_from_record(rec.get("tool_call")),
    )


def _redacted(obj: Any, secrets: tuple[str, ...]) -> Any:
    """Every string in ``obj`` through `redact`: the last guard before anything is written."""
    if isinstance(obj, str):
        return redact(obj, secrets)
    if isinstance(obj, Mapping):
        return {redact(str(k), secrets): _redacted(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_redacted(v, secrets) for v in obj]
    return obj


# -- recording -------------------------------------------------------------------------------------


class CassetteRecorder:
    """Passes a stream's events through unchanged and appends the request to a cassette file.

    Only completed requests are recorded — those whose stream delivered its ``finish`` event. A
    request that failed, or that the caller stopped before the end, leaves no line, so a replay
    never serves half an answer. Appends are one ``write`` of one line on an ``O_APPEND`` file:
    threads and processes recording into the same cassette cannot interleave their lines.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()

    def wrap(self, gen: AsyncIterator[StreamEvent], messages: list[Message], params: dict[str, Any],
             client: Any) -> AsyncIterator[StreamEvent]:
        """The same events as ``gen``; the request is written once its ``finish`` event has passed."""
        return self._record(gen, list(messages), dict(params), client)

    async def _record(self, gen: AsyncIterator[StreamEvent], messages: list[Message], params: dict[str, Any],
                      client: Any) -> AsyncIterator[StreamEvent]:
        start = time.monotonic()
        events: list[dict[str, Any]] = []
        finished = False
        failed = False
        try:
            async for ev in gen:
                events.append(_event_record(ev, time.monotonic() - start))
                finished = finished or ev.type == "finish"
                yield ev
        except BaseException as exc:
            # closed or cancelled after the finish event: the caller stopped reading a complete answer
            failed = isinstance(exc, Exception)
            raise
        finally:
            aclose = getattr(gen, "aclose", None)
            if aclose is not None:
                await aclose()  # close the inner stream now, not whenever it is garbage-collected
            if finished and not failed:
                self._append(self._entry(messages, params, client, events))

    def _entry(self, messages: list[Message], params: dict[str, Any], client: Any,
               events: list[dict[str, Any]]) -> dict[str, Any]:
        norm_messages, norm_params = normalize_request(messages, params)
        model = next((e["model"] for e in reversed(events) if e.get("model")), None) or getattr(client, "model", None)
        request_id = next((e["request_id"] for e in events if e.get("request_id")), None)
        config = getattr(client, "config", None)
        secrets = tuple(getattr(config, "secrets", ()) or ())
        entry: dict[str, Any] = {
            "key": request_key(messages, params),
            "request": {"messages": norm_messages, "params": {**norm_params, "model": norm_params.get("model", model)}},
            "events": events,
            "reply": {"model": model, "request_id": request_id},
            "provider": getattr(client, "provider", None),
            "recorded_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        return _redacted(entry, secrets)

    def _append(self, entry: dict[str, Any]) -> None:
        # key order kept (key, request, events, …) so a person can read the file; one line per request
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(line)
                while view:  # a regular file takes the whole line in one write; loop only for safety
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)


# -- replaying -------------------------------------------------------------------------------------


def load_cassette(path: str) -> list[dict[str, Any]]:
    """The recorded requests, in file order. A torn last line (a crash while recording) is skipped."""
    entries = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                logger.warning("cassette %s: line %d is not valid JSON; skipped", path, number)
                continue
            if isinstance(entry, dict) and isinstance(entry.get("key"), str) and isinstance(entry.get("events"), list):
                entries.append(entry)
    return entries


def _replay_speed(value: str | None) -> float | None:
    """None = instant; ``recorded`` = 1.0; a number = that many times the recorded speed."""
    if not value or value.strip().lower() in ("instant", "0", "none"):
        return None
    if value.strip().lower() == "recorded":
        return 1.0
    try:
        speed = float(value)
    except ValueError:
        speed = -1.0
    if speed <= 0:
        raise ConfigurationError(
            f"ERNIE_REPLAY_SPEED 无效 / ERNIE_REPLAY_SPEED must be 'recorded', 'instant' or a positive number, got {value!r}"
        )
    return speed


def _clip(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


class ReplayProvider(DirectProvider):
    """Answers from a cassette: same events, same text, no network. Repeated requests are served in order."""

    name = "replay"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        from ..config import environment

        path = config.extra.get("ERNIE_CASSETTE")
        if not path:
            raise ConfigurationError(
                "回放需要录音文件 / replay needs a cassette: pass cassette='answers.jsonl' or set ERNIE_CASSETTE"
            )
        self.path = os.path.abspath(os.path.expanduser(path))
        if not os.path.isfile(self.path):
            raise ConfigurationError(
                f"找不到录音文件 / cassette file not found: {self.path} — record it first with "
                f"ERNIE_CASSETTE={path} ERNIE_CASSETTE_MODE=record and a live provider"
            )
        self.speed = _replay_speed(environment().get("ERNIE_REPLAY_SPEED"))
        self._entries: dict[str, list[dict[str, Any]]] = {}
        self._all: list[dict[str, Any]] = []
        self._stamp: tuple[int, int] | None = None
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()

    def _index(self) -> dict[str, list[dict[str, Any]]]:
        """The cassette by key, re-read when the file changes (e.g. recorded by another process)."""
        st = os.stat(self.path)
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            entries = load_cassette(self.path)
            index: dict[str, list[dict[str, Any]]] = {}
            for entry in entries:
                index.setdefault(entry["key"], []).append(entry)
            self._all, self._entries, self._stamp = entries, index, stamp
        return self._entries

    def _next_entry(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            recorded = self._index().get(key)
            if not recorded:
                return None
            n = self._served.get(key, 0)
            self._served[key] = n + 1
            return recorded[min(n, len(recorded) - 1)]  # in order, then the last one again

    async def events(self, messages: list[Message], params: dict[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        entry = self._next_entry(request_key(messages, params))
        if entry is None:
            raise self._miss(messages, params)
        reply_model = (entry.get("reply") or {}).get("model")
        loop = asyncio.get_running_loop()
        start = loop.time()
        for rec in entry["events"]:
            if self.speed is not None:
                delay = start + float(rec.get("t") or 0) / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            ev = _event_from_record(rec)
            if ev.model is None and ev.type in ("usage", "finish") and reply_model:
                ev = dataclasses.replace(ev, model=reply_model)
            yield ev

    def _miss(self, messages: list[Message], params: dict[str, Any]) -> CassetteMissError:
        wanted = _last_user_text(messages)
        how = (f"to record it: ERNIE_CASSETTE={self.path} ERNIE_CASSETTE_MODE=record with a live provider "
               "(QIANFAN_API_KEY, …), then run again")
        if not self._all:
            return CassetteMissError(
                f"录音中没有这个请求 / this request is not in the cassette {self.path} (it is empty); {how}"
            )
        best, best_ratio = None, -1.0
        for entry in self._all:
            recorded = _last_user_text((entry.get("request") or {}).get("messages") or [])
            ratio = difflib.SequenceMatcher(None, wanted, recorded).ratio()
            if ratio > best_ratio:
                best, best_ratio = entry, ratio
        assert best is not None
        request = best.get("request") or {}
        closest = _last_user_text(request.get("messages") or [])
        _, live = normalize_request(messages, params)
        stored = dict(request.get("params") or {})
        if "model" not in live:
            stored.pop("model", None)  # the recorder fills in the client's model; this request names none
        diffs = [f"{k}: {stored.get(k)!r} → {live.get(k)!r}" for k in sorted(set(stored) | set(live))
                 if stored.get(k) != live.get(k)]
        detail = f"; parameters differ ({', '.join(diffs[:4])})" if diffs else ""
        if closest == wanted and not diffs:
            detail = "; the earlier messages differ"
        return CassetteMissError(
            f"录音中没有这个请求 / this request is not in the cassette {self.path}: “{_clip(wanted)}”. "
            f"Closest recorded: “{_clip(closest)}” (similarity {best_ratio:.2f}{detail}); {how}"
        )
