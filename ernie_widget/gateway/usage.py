"""Per-user usage by UTC day and model: requests and tokens, for `GET /admin/usage`, `GET /v1/usage` and
``ernie-widget serve usage``.

Answers add to an in-memory tally (no disk write on the request path); the tally goes to SQLite once a second
(the gateway's sweeper) and on shutdown, one transaction of upserts. Users are `Principal.id` values
(``key:alice``, ``jwt:alice``), the same identities the limits count.

`UsageTally` is the in-memory part; `UsageStore` writes it to SQLite, `store_pg.PgUsageStore` to the PostgreSQL
database replicas share (upserts add up, so every replica's tally lands in one report). `open_usage` picks one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["UsageRow", "UsageStore", "UsageTally", "open_usage", "utc_day"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL,
    user TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    PRIMARY KEY (day, user, model)
)
"""

_UPSERT = """
INSERT INTO usage (day, user, model, requests, prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (day, user, model) DO UPDATE SET requests = requests + excluded.requests,
    prompt_tokens = prompt_tokens + excluded.prompt_tokens,
    completion_tokens = completion_tokens + excluded.completion_tokens
"""


def select_usage(since: str | None, until: str | None, user: str | None, limit: int, *,
                 param: str = "?", user_column: str = "user") -> tuple[str, tuple[Any, ...]]:
    """The usage query and its arguments, newest day first, for SQLite (`?`, `user`) or PostgreSQL (`%s`, where
    user is a reserved word: `"user"`). Only the given filters apply."""
    where, args = [], []
    for clause, value in ((f"day >= {param}", since), (f"day <= {param}", until), (f"{user_column} = {param}", user)):
        if value is not None:
            where.append(clause)
            args.append(value)
    sql = (f"SELECT day, {user_column}, model, requests, prompt_tokens, completion_tokens FROM usage"
           + (" WHERE " + " AND ".join(where) if where else "")
           + f" ORDER BY day DESC, {user_column}, model LIMIT {param}")
    return sql, (*args, limit)


def utc_day(ts: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if ts is None else ts))


@dataclass(frozen=True)
class UsageRow:
    day: str
    user: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def public(self) -> dict[str, Any]:
        return {"day": self.day, "user": self.user, "model": self.model, "requests": self.requests,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


Tally = tuple[str, str, str, int, int, int]  # day, user, model, requests, prompt tokens, completion tokens


class UsageTally:
    """Counts answers' usage in memory; a backend subclass writes a batch (`_write`) and reads reports (`_select`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the tally: held only for a moment, `record` runs on the event loop
        self._io = threading.Lock()  # the database: one flush, report or close at a time
        self._pending: defaultdict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])

    def record(self, user: str, model: str | None, prompt_tokens: int, completion_tokens: int,
               ts: float | None = None) -> None:
        """One answer (or a refused-after-start one) of ``user``; cheap, in memory until `flush`."""
        with self._lock:
            tally = self._pending[(utc_day(ts), user, model or "default")]
            tally[0] += 1
            tally[1] += max(0, int(prompt_tokens))
            tally[2] += max(0, int(completion_tokens))

    def flush(self) -> None:
        """Write what was counted since the last flush, as one transaction."""
        with self._io:
            with self._lock:  # swap the tally; the write happens outside this lock, so `record` never waits for it
                pending, self._pending = self._pending, defaultdict(lambda: [0, 0, 0])
            if not pending:
                return
            rows: list[Tally] = [(*k, *v) for k, v in pending.items()]  # type: ignore[misc]
            try:
                self._write(rows)
            except BaseException:
                # keep the counts for the next flush rather than lose them to a passing database error
                with self._lock:
                    for (day, user, model, n, p, c) in rows:
                        tally = self._pending[(day, user, model)]
                        tally[0] += n
                        tally[1] += p
                        tally[2] += c
                raise

    def report(self, *, since: str | None = None, until: str | None = None, user: str | None = None,
               limit: int = 10_000) -> list[UsageRow]:
        """Rows by day (newest first), user and model; ``since``/``until`` are ``YYYY-MM-DD`` (inclusive)."""
        self.flush()
        with self._io:
            return self._select(since, until, user, max(1, min(int(limit), 100_000)))

    def close(self) -> None:
        self.flush()
        with self._io:
            self._close()

    # -- the backend, called inside the database lock ---------------------------------------------------------------

    def _write(self, rows: list[Tally]) -> None:
        raise NotImplementedError

    def _select(self, since: str | None, until: str | None, user: str | None, limit: int) -> list[UsageRow]:
        raise NotImplementedError

    def _close(self) -> None:
        pass


def open_usage(target: str | os.PathLike[str] | None) -> UsageTally:
    """The usage backend for ``target``: PostgreSQL for a ``postgresql://`` URL, else SQLite (None: in memory)."""
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        from .store_pg import PgUsageStore

        return PgUsageStore(target)
    return UsageStore(target)


class UsageStore(UsageTally):
    """Records answers' usage in SQLite and reports it. ``path=None`` keeps it in memory (a gateway without a
    database)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        super().__init__()
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False,
                                   isolation_level=None, timeout=5)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        with contextlib.suppress(OSError, TypeError):
            os.chmod(self.path, 0o600)  # type: ignore[arg-type]

    def _write(self, rows: list[Tally]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(_UPSERT, rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _select(self, since: str | None, until: str | None, user: str | None, limit: int) -> list[UsageRow]:
        sql, args = select_usage(since, until, user, limit)
        return [UsageRow(*r) for r in self._db.execute(sql, args).fetchall()]

    def _close(self) -> None:
        self._db.close()
