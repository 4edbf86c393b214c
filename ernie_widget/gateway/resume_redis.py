"""The WebSocket replay window shared by replicas through Redis Streams: resume an answer on any replica.

The replica running an answer keeps it in memory as `ReplayStore` does (a resume on the same replica reads
that), and mirrors each message into one stream per answer, ``ewg:replay:<hash of user and mid>``: the entry ID
is the message's ``seq`` (``<seq>-0``), the terminal message is ``<last seq>-2``, and a ``0-1`` marker opens the
stream, so "after seq N" is ``XREAD … <N>-0`` and every replica reads the same order without coordination.
The bytes bound and withdrawals trim the stream as they trim the buffer (``XTRIM MINID``); the key expires
``replay_ttl`` after the answer ends.

Another replica asked to resume reads the backlog and then follows the stream live (``XREAD BLOCK``), while
keeping ``<stream>:watch`` alive so the running replica knows the answer is still watched (its ``resume_grace``
counts from when no replica watches it). ``stop`` (or a normal close) on the following replica sets
``<stream>:stop``, which the running replica polls. While an answer runs, its replica keeps ``<stream>:alive``
fresh (a few seconds' TTL): a follower whose answer has no terminal message and no ``alive`` key (its replica was
killed) ends with an ``answer_lost`` error instead of waiting, and a new chat reusing the ``mid`` of an answer
running on another replica is refused (409 ``duplicate_mid``) as it is on one.

Writes never block an answer: `put` queues them, and one writer task sends the queue in a pipeline; a Redis
outage loses only the cross-replica window (logged), never the answer or the local resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from .errors import GatewayError
from .items import Item
from .resume import ReplayAnswer, ReplayStore, _key, resume_gap, resume_unavailable

__all__ = ["RedisReplayAnswer", "RedisReplayStore"]

logger = logging.getLogger("ernie_widget.gateway")

_PREFIX = "ewg:replay:"
_START = json.dumps({"type": "_start"})


class RedisReplayAnswer(ReplayAnswer):
    """A `ReplayAnswer` that also mirrors its messages into its Redis stream."""

    def __init__(self, store: RedisReplayStore, user: str, mid: Any, max_bytes: int) -> None:
        super().__init__(user, mid, max_bytes)
        self._store = store
        self.stream = store.stream_key(user, mid)

    def put(self, item: Item) -> bool:
        last_seq, first_seq, had_terminal = self.last_seq, self.first_seq, self.terminal is not None
        ok = super().put(item)
        store, stream = self._store, self.stream
        if self.terminal is not None and not had_terminal:
            store.queue(("xadd", stream, f"{self.last_seq}-2", json.dumps(self.terminal)))
            store.queue(("expire", stream, store.ttl_ms))
            store.queue(("del", stream + ":alive"))
        elif self.last_seq != last_seq:
            msg = self.entries[-1][1]
            store.queue(("xadd", stream, f"{self.last_seq}-0", json.dumps(msg)))
            if msg["type"] == "withdraw":  # the withdrawn text must not come back on any replica either
                store.queue(("trim", stream, f"{self.last_seq}-0"))
            elif self.first_seq != first_seq and first_seq <= self.last_seq:  # the bytes bound dropped the oldest
                store.queue(("trim", stream, f"{self.first_seq}-0"))
        return ok


class RedisReplayStore(ReplayStore):
    """`ReplayStore` whose answers can be resumed on every replica sharing ``redis_url``."""

    shared = True

    def __init__(self, redis_url: str, max_bytes: int, ttl: float, grace: float, max_answers: int = 10_000) -> None:
        super().__init__(max_bytes, ttl, grace, max_answers)
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise ImportError("共享续传需要 redis / resuming on any replica needs the redis package: "
                              "pip install 'ernie-widget[gateway,redis]'") from None
        # Any: redis-py 8 types replies for both decode modes; with decode_responses they are str
        self.redis: Any = aioredis.Redis.from_url(redis_url, decode_responses=True)
        self.ttl_ms = max(1000, int(ttl * 1000))
        # while an answer runs its stream outlives any pause between messages (the monitor refreshes this)
        self._running_ms = self.ttl_ms + max(1000, int(grace * 1000)) + 60_000
        self._ops: list[tuple[Any, ...]] = []
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._interval = max(0.05, min(1.0, grace / 4))
        # how long a running answer's replica may go silent before its followers give up on it
        self._alive_ms = max(5000, int(self._interval * 8000))

    @staticmethod
    def stream_key(user: str, mid: Any) -> str:
        # hashed: user ids and mids are client-chosen text, never parts of a Redis key as they are
        return _PREFIX + hashlib.sha256(f"{user}\0{_key(mid)}".encode()).hexdigest()[:40]

    def create(self, user: str, mid: Any) -> ReplayAnswer:
        if len(self.answers) >= self.max_answers:
            self._evict_finished()
        answer = RedisReplayAnswer(self, user, mid, self.max_bytes)
        self.answers.pop((user, _key(mid)), None)
        self.answers[(user, _key(mid))] = answer
        stream = answer.stream
        # a mid used again starts a fresh stream (and a stale stop request does not stop the new answer)
        self.queue(("del", stream, stream + ":stop"))
        self.queue(("xadd", stream, "0-1", _START))
        self.queue(("expire", stream, self._running_ms))
        self.queue(("setpx", stream + ":alive", self._alive_ms))
        return answer

    # -- the writer and the monitor, one task each per store ----------------------------------------------------

    def queue(self, op: tuple[Any, ...]) -> None:
        self._ops.append(op)
        if self._wake is None:
            self._start()
        assert self._wake is not None
        self._wake.set()

    def _start(self) -> None:
        self._wake = asyncio.Event()
        self._tasks = [asyncio.get_running_loop().create_task(self._write_forever(), name="gateway-replay-writer"),
                       asyncio.get_running_loop().create_task(self._monitor_forever(), name="gateway-replay-monitor")]

    async def _write_forever(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._write()
            except Exception as exc:  # Redis unreachable: this replica's answers stay resumable here
                logger.warning("replay window: Redis write failed: %s", type(exc).__name__)

    async def _write(self) -> None:
        ops, self._ops = self._ops, []
        if not ops:
            return
        pipe = self.redis.pipeline(transaction=False)
        for op in ops:
            if op[0] == "xadd":
                pipe.xadd(op[1], {"m": op[3]}, id=op[2])
            elif op[0] == "trim":
                pipe.xtrim(op[1], minid=op[2], approximate=False)  # exact: the window must match memory
            elif op[0] == "expire":
                pipe.pexpire(op[1], op[2])
            elif op[0] == "del":
                pipe.delete(*op[1:])
            elif op[0] == "setpx":
                pipe.set(op[1], "1", px=op[2])
        for result in await pipe.execute(raise_on_error=False):
            if isinstance(result, Exception):
                logger.warning("replay window: %s", result)

    async def _monitor_forever(self) -> None:
        """For the answers running here: keep a detached one alive while another replica follows it, stop one
        whose follower asked to stop, and keep their streams from expiring."""
        while True:
            await asyncio.sleep(self._interval)
            running = [a for a in self.answers.values() if isinstance(a, RedisReplayAnswer) and a.running]
            if not running:
                continue
            try:
                pipe = self.redis.pipeline(transaction=False)
                for a in running:
                    pipe.exists(a.stream + ":watch")
                    pipe.get(a.stream + ":stop")
                    pipe.pexpire(a.stream, self._running_ms)
                    pipe.set(a.stream + ":alive", "1", px=self._alive_ms)
                results = await pipe.execute()
            except Exception as exc:
                logger.warning("replay window: Redis check failed: %s", type(exc).__name__)
                continue
            now = time.monotonic()
            for i, answer in enumerate(running):
                watched, stop = results[4 * i], results[4 * i + 1]
                if stop:
                    answer.stop_reason = stop if stop in ("stopped", "client_closed") else "stopped"
                    answer.cancel()
                elif watched and answer.detached_at is not None:
                    answer.detached_at = now

    # -- following an answer of another replica ------------------------------------------------------------------

    async def follow(self, user: str, mid: Any, seq: int) -> AsyncIterator[dict[str, Any]]:
        stream = self.stream_key(user, mid)
        first = await self.redis.xrange(stream, "-", "+", count=1)
        if not first:
            raise resume_unavailable()
        entry_id, fields = first[0]
        msg = json.loads(fields["m"])
        if msg.get("type") != "_start":
            number, part = (int(x) for x in entry_id.split("-"))
            first_seq = number + 1 if part == 2 else number
            if seq + 1 < first_seq and msg.get("type") != "withdraw":
                raise resume_gap(seq)
        last_id = f"{seq}-0"
        block_ms = max(50, int(min(5.0, self.grace / 3) * 1000))
        watch_ms = max(1000, int(self.grace * 1000))
        while True:
            await self.redis.set(stream + ":watch", "1", px=watch_ms)
            found = await self.redis.xread({stream: last_id}, count=512, block=block_ms)
            if not found:
                exists, alive = await self.redis.exists(stream), await self.redis.exists(stream + ":alive")
                if not exists:  # expired, or a newer answer replaced it
                    raise resume_unavailable()
                if not alive:  # no terminal message, and its replica stopped keeping it alive: it died
                    raise GatewayError(502, "回答所在的副本已停止 / the replica running this answer stopped "
                                       "before it finished; ask again", "answer_lost")
                continue
            for entry_id, fields in found[0][1]:
                last_id = entry_id
                msg = json.loads(fields["m"])
                if msg.get("type") == "_start":
                    continue
                yield msg
                if entry_id.endswith("-2"):  # the terminal message
                    return

    async def running_elsewhere(self, user: str, mid: Any) -> bool:
        try:
            return bool(await self.redis.exists(self.stream_key(user, mid) + ":alive"))
        except Exception as exc:  # Redis unreachable: the mid check falls back to this replica's own answers
            logger.warning("replay window: Redis check failed: %s", type(exc).__name__)
            return False

    async def stop_remote(self, user: str, mid: Any, reason: str) -> None:
        stream = self.stream_key(user, mid)
        await self.redis.set(stream + ":stop", reason, px=max(10_000, self._running_ms))

    async def aclose(self) -> None:
        # the answers cancelled by `cancel_all` write their terminal message on the next turns of the loop
        for _ in range(3):
            await asyncio.sleep(0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._write(), 2)
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
