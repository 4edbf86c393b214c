"""The WebSocket replay window: each answer keeps its recent messages so a reconnecting client can resume.

Per answer the buffer is bounded in bytes (oldest deltas drop first) and in time: a finished answer
stays resumable for ``ttl`` seconds; a running one that has had no connection for ``grace`` seconds
is cancelled, so an abandoned answer does not keep spending upstream tokens.

`ReplayStore` keeps the window in this process. Replicas share it through Redis (`resume_redis.RedisReplayStore`):
there a client may resume on any replica: `follow` relays an answer another replica is running.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from .errors import GatewayError
from .items import Item

__all__ = ["ReplayAnswer", "ReplayStore", "resume_unavailable"]

Subscriber = Callable[[dict[str, Any]], None]


class ReplayAnswer:
    """One answer's messages, numbered by ``seq`` (1, 2, …), and its live subscriber. Also the run's `Sink`."""

    def __init__(self, user: str, mid: Any, max_bytes: int, notice: str = "") -> None:
        self.user = user
        self.mid = mid
        self.max_bytes = max_bytes
        self.entries: deque[tuple[int, dict[str, Any], int]] = deque()
        self.bytes = 0
        self.last_seq = 0
        self.terminal: dict[str, Any] | None = None
        self.finished_at: float | None = None
        self.detached_at: float | None = time.monotonic()
        self.subscriber: Subscriber | None = None
        self.task: asyncio.Task[None] | None = None
        self.stop_reason = "cancelled"  # the finish_reason if the task ends without one

    # -- Sink ---------------------------------------------------------------------------------------

    def put(self, item: Item) -> bool:
        msg = self._message(item)
        if msg is None:
            return True
        if item.terminal:
            self.terminal = msg
            self.finished_at = time.monotonic()
        else:
            if item.kind == "withdraw":
                # the withdrawn text must not come back on resume either
                self.entries.clear()
                self.bytes = 0
            self.last_seq += 1
            msg["seq"] = self.last_seq
            size = item.size
            self.entries.append((self.last_seq, msg, size))
            self.bytes += size
            while self.bytes > self.max_bytes and len(self.entries) > 1:
                self.bytes -= self.entries.popleft()[2]
        if self.subscriber is not None:
            self.subscriber(msg)
        return True

    def abort(self, item: Item) -> None:
        self.put(item)

    def finalize(self, reason: str) -> None:
        """End an answer whose task stopped without a terminal message (stopped, abandoned, shut down)."""
        if self.terminal is None:
            self.put(Item("end", finish_reason=reason))

    def _message(self, item: Item) -> dict[str, Any] | None:
        mid = self.mid
        if item.kind == "text":
            return {"type": "delta", "mid": mid, "text": item.text}
        if item.kind == "reasoning":
            return {"type": "delta", "mid": mid, "reasoning": item.text}
        if item.kind == "safety" and item.safety is not None:
            return {"type": "safety", "mid": mid, **item.safety.to_dict()}
        if item.kind == "withdraw":
            return {"type": "withdraw", "mid": mid, "notice": item.text}
        if item.kind == "end":
            return {"type": "done", "mid": mid, "usage": item.usage.to_dict() if item.usage else None,
                    "finish_reason": item.finish_reason}
        if item.kind == "error" and item.error is not None:
            err = item.error
            msg: dict[str, Any] = {"type": "error", "mid": mid, "code": err.code, "message": err.message,
                                   "status": err.status}
            if err.retry_after is not None:
                msg["retry_after"] = err.headers()["Retry-After"]
            return msg
        return None

    # -- resume -------------------------------------------------------------------------------------

    @property
    def first_seq(self) -> int:
        return self.entries[0][0] if self.entries else self.last_seq + 1

    def since(self, seq: int) -> list[dict[str, Any]] | None:
        """Messages after ``seq`` (and the terminal one), or None when some were already dropped."""
        if self.entries and seq + 1 < self.first_seq and self.entries[0][1]["type"] != "withdraw":
            return None
        out = [m for s, m, _ in self.entries if s > seq]
        if self.terminal is not None:
            out.append(self.terminal)
        return out

    def attach(self, subscriber: Subscriber) -> None:
        self.subscriber = subscriber
        self.detached_at = None

    def detach(self, subscriber: Subscriber) -> None:
        if self.subscriber == subscriber:  # bound methods: equal, never identical
            self.subscriber = None
            self.detached_at = time.monotonic()

    @property
    def running(self) -> bool:
        return self.terminal is None and self.task is not None and not self.task.done()

    def cancel(self) -> None:
        if self.task is not None and not self.task.done() and not self.task.cancelling():
            self.task.cancel()


def resume_unavailable() -> GatewayError:
    return GatewayError(404, "没有可续传的回答 / no answer to resume for this mid (finished too long ago, or never "
                        "started)", "resume_unavailable")


def resume_gap(seq: int) -> GatewayError:
    return GatewayError(410, f"续传窗口已过 / the replay window no longer holds seq {seq + 1}; ask again", "resume_gap")


class ReplayStore:
    """Answers by (user, mid): a user can only resume their own."""

    #: True when answers running on other replicas can be followed (`follow`), False for this process only
    shared = False

    def __init__(self, max_bytes: int, ttl: float, grace: float, max_answers: int = 10_000) -> None:
        self.max_bytes = max_bytes
        self.max_answers = max_answers
        self.ttl = ttl
        self.grace = grace
        self.answers: dict[tuple[str, Any], ReplayAnswer] = {}

    def create(self, user: str, mid: Any) -> ReplayAnswer:
        if len(self.answers) >= self.max_answers:
            self._evict_finished()
        answer = ReplayAnswer(user, mid, self.max_bytes)
        self.answers.pop((user, _key(mid)), None)
        self.answers[(user, _key(mid))] = answer
        return answer

    def _evict_finished(self) -> None:
        """Keep the store bounded: drop the oldest finished answers (running ones are bounded by the
        per-connection in-flight limit)."""
        for key in [k for k, a in self.answers.items() if a.terminal is not None][: max(1, self.max_answers // 10)]:
            del self.answers[key]

    def get(self, user: str, mid: Any) -> ReplayAnswer | None:
        return self.answers.get((user, _key(mid)))

    def sweep(self, now: float | None = None) -> None:
        """Forget finished answers past their TTL; cancel running ones nobody has watched for ``grace`` seconds."""
        now = time.monotonic() if now is None else now
        for key, answer in list(self.answers.items()):
            if answer.finished_at is not None or (answer.task is not None and answer.task.done()):
                end = answer.finished_at or now
                if now - end >= self.ttl:
                    del self.answers[key]
            elif answer.detached_at is not None and now - answer.detached_at >= self.grace:
                answer.stop_reason = "abandoned"
                answer.cancel()

    def cancel_all(self) -> None:
        for answer in self.answers.values():
            answer.cancel()

    # -- answers of other replicas (`shared` stores) ----------------------------------------------------------

    async def follow(self, user: str, mid: Any, seq: int) -> AsyncIterator[dict[str, Any]]:
        """The messages after ``seq`` of an answer another replica runs, then its live ones up to the terminal
        one; raises `GatewayError` (``resume_unavailable``, ``resume_gap``). Here: no other replicas."""
        raise resume_unavailable()
        yield {}  # pragma: no cover - makes this an async generator

    async def running_elsewhere(self, user: str, mid: Any) -> bool:
        """Whether another replica is running ``user``'s answer ``mid`` (a new chat must not reuse the mid)."""
        return False

    async def stop_remote(self, user: str, mid: Any, reason: str) -> None:
        """Ask the replica running ``mid`` to stop it (``reason``: its finish_reason)."""

    async def aclose(self) -> None:
        """Write out what is pending and close connections (after `cancel_all`)."""


def _key(mid: Any) -> str:
    return f"{type(mid).__name__}:{mid}"
