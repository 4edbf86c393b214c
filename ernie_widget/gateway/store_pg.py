"""The PostgreSQL backend replicas share: keys and the audit log (`PgKeyStore`), usage (`PgUsageStore`).

All of this backend's SQL is here; the SQLite backend's is in `keys` and `usage`. Each store holds one
connection (autocommit; multi-statement changes in an explicit transaction) behind a lock, and reconnects once
when the server closed it (a restart or failover), so a replica outlives its database's restarts.

Keys are looked up on every request, without a cache: a key revoked through any replica is refused by every
replica on its very next request. The lookup is one indexed primary-key-sized read.
"""

from __future__ import annotations

import builtins
import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

try:
    import psycopg
except ImportError:  # pragma: no cover - the gateway extra brings it
    raise ImportError("PostgreSQL 需要 psycopg / a postgresql:// database needs psycopg: "
                      "pip install 'ernie-widget[gateway]' (or 'psycopg[binary]>=3.2')") from None

from .keys import (
    _COLUMNS,
    AuditEntry,
    KeyRecord,
    StoreUnavailable,
    audit_detail,
    check_add,
    check_rotate,
    hmac_digest,
    key_secret,
    new_key,
    record_from_row,
)
from .usage import Tally, UsageRow, UsageTally, select_usage

__all__ = ["PgKeyStore", "PgUsageStore"]

T = TypeVar("T")

# the same tables as the SQLite backend; times are Unix seconds. "user" is a reserved word here: quoted.
_KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    rpm BIGINT,
    tpm BIGINT,
    daily_tokens BIGINT,
    models TEXT,
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION,
    revoked DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS api_keys_name ON api_keys (name);
CREATE TABLE IF NOT EXISTS audit (
    id BIGSERIAL PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
)
"""

_USAGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL,
    "user" TEXT NOT NULL,
    model TEXT NOT NULL,
    requests BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    PRIMARY KEY (day, "user", model)
)
"""

_USAGE_UPSERT = """
INSERT INTO usage (day, "user", model, requests, prompt_tokens, completion_tokens) VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (day, "user", model) DO UPDATE SET requests = usage.requests + excluded.requests,
    prompt_tokens = usage.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = usage.completion_tokens + excluded.completion_tokens
"""

# replicas starting at once would race on CREATE TABLE IF NOT EXISTS (a unique violation in pg_type):
# the schema is created under one transaction-scoped advisory lock
_SCHEMA_LOCK = 0x45726E6965  # "Ernie"
_ACTIVE = "revoked IS NULL AND (expires IS NULL OR expires > %s)"


class _Connection:
    """One psycopg connection behind a lock, reconnected once if the server dropped it."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.lock = threading.Lock()
        # after a failed reconnect, calls fail at once for a second: lookups run on the event loop, which must
        # not wait for a connect timeout on every request while the database is away
        self._down_until = 0.0
        self._conn = self._connect(10)
        with self.lock, self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in schema.split(";"):
                if statement.strip():
                    self._conn.execute(statement)

    def _connect(self, timeout: int) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=timeout)
        except psycopg.OperationalError as exc:
            self._down_until = time.monotonic() + 1.0
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreUnavailable(f"无法连接数据库 / cannot connect to the gateway's PostgreSQL database "
                                   f"({_redact(self.url)}): {detail}") from None

    def run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work(connection)`` under the lock; on a dropped connection, reconnect and run it once more (safe:
        every ``work`` is one transaction, which the server rolled back when the connection died)."""
        with self.lock:
            if self._conn.closed:
                self._reconnect()
            try:
                return work(self._conn)
            except psycopg.OperationalError:
                if not self._conn.closed:
                    raise
                self._reconnect()
                return work(self._conn)

    def _reconnect(self) -> None:
        if time.monotonic() < self._down_until:
            raise StoreUnavailable(f"数据库不可用 / the gateway's PostgreSQL database ({_redact(self.url)}) is "
                                   "unreachable; retrying every second")
        self._conn = self._connect(2)

    def close(self) -> None:
        with self.lock:
            self._conn.close()


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class PgKeyStore:
    """`KeyStorage` on PostgreSQL, for replicas. The HMAC secret must be ``$ERNIE_GATEWAY_KEY_SECRET`` (the same
    on every replica) unless given."""

    def __init__(self, url: str, secret: bytes | None = None) -> None:
        self.url = url
        self._secret = secret or key_secret()
        self._db = _Connection(url, _KEYS_SCHEMA)

    def digest(self, key: str) -> str:
        return hmac_digest(self._secret, key)

    def add(self, name: str, *, rpm: int | None = None, tpm: int | None = None, daily_tokens: int | None = None,
            models: tuple[str, ...] | list[str] | None = None, expires_in: float | None = None,
            actor: str | None = None) -> str:
        models_json = check_add(name, rpm, tpm, daily_tokens, models, expires_in)
        key = new_key()
        now = time.time()

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                self._lock_name(conn, name)
                if self._active_rows(conn, name, now):
                    raise ValueError(f"{name!r} 已有有效的 key / an active key named {name!r} exists; "
                                     "revoke or rotate it")
                self._insert(conn, name, key, rpm, tpm, daily_tokens, models_json, now,
                             None if expires_in is None else now + expires_in)
                self._audit(conn, actor, "add", name, {
                    "rpm": rpm, "tpm": tpm, "daily_tokens": daily_tokens,
                    "models": json.loads(models_json) if models_json else None, "expires_in": expires_in,
                    "hint": key[:8]})

        self._db.run(work)
        return key

    def rotate(self, name: str, *, grace: float = 86400.0, expires_in: float | None = None,
               actor: str | None = None) -> str:
        check_rotate(name, grace, expires_in)
        key = new_key()
        now = time.time()

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                self._lock_name(conn, name)
                rows = self._active_rows(conn, name, now)
                if not rows:
                    raise ValueError(f"{name!r} 没有有效的 key / no active key named {name!r} to rotate "
                                     "(use keys add)")
                newest = rows[-1]
                conn.execute(f"UPDATE api_keys SET expires = LEAST(COALESCE(expires, %s), %s) "
                             f"WHERE name = %s AND {_ACTIVE}", (now + grace, now + grace, name, now))
                self._insert(conn, name, key, newest.rpm, newest.tpm, newest.daily_tokens,
                             json.dumps(list(newest.models)) if newest.models is not None else None, now,
                             None if expires_in is None else now + expires_in)
                self._audit(conn, actor, "rotate", name, {"grace": grace, "expires_in": expires_in,
                                                          "hint": key[:8], "old": [r.hint for r in rows]})

        self._db.run(work)
        return key

    def lookup(self, key: str) -> KeyRecord | None:
        digest = self.digest(key)
        row = self._db.run(lambda conn: conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE digest = %s",
                                                     (digest,)).fetchone())
        return record_from_row(row) if row else None

    def list(self) -> builtins.list[KeyRecord]:
        rows = self._db.run(lambda conn: conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY name, id")
                            .fetchall())
        return [record_from_row(r) for r in rows]

    def revoke(self, name: str, *, actor: str | None = None) -> bool:
        now = time.time()

        def work(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                count = conn.execute(f"UPDATE api_keys SET revoked = %s WHERE name = %s AND {_ACTIVE}",
                                     (now, name, now)).rowcount
                if count > 0:
                    self._audit(conn, actor, "revoke", name, {"keys": count})
            return count

        return self._db.run(work) > 0

    def audit(self, limit: int = 100) -> builtins.list[AuditEntry]:
        rows = self._db.run(lambda conn: conn.execute(
            "SELECT ts, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT %s",
            (max(1, min(int(limit), 10_000)),)).fetchall())
        return [AuditEntry(ts, actor, action, target, json.loads(detail)) for ts, actor, action, target, detail in rows]

    def close(self) -> None:
        self._db.close()

    # -- inside a transaction -------------------------------------------------------------------------------

    @staticmethod
    def _lock_name(conn: psycopg.Connection[Any], name: str) -> None:
        # two replicas adding or rotating the same name at once: one waits for the other's commit
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))

    @staticmethod
    def _active_rows(conn: psycopg.Connection[Any], name: str, now: float) -> builtins.list[KeyRecord]:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE name = %s AND {_ACTIVE} ORDER BY id",
                            (name, now)).fetchall()
        return [record_from_row(r) for r in rows]

    def _insert(self, conn: psycopg.Connection[Any], name: str, key: str, rpm: int | None, tpm: int | None,
                daily_tokens: int | None, models_json: str | None, now: float, expires: float | None) -> None:
        conn.execute(
            "INSERT INTO api_keys (name, digest, hint, rpm, tpm, daily_tokens, models, created, expires, revoked) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL)",
            (name, self.digest(key), key[:8], rpm, tpm, daily_tokens, models_json, now, expires))

    @staticmethod
    def _audit(conn: psycopg.Connection[Any], actor: str | None, action: str, target: str,
               detail: dict[str, Any]) -> None:
        conn.execute("INSERT INTO audit (ts, actor, action, target, detail) VALUES (%s, %s, %s, %s, %s)",
                     (time.time(), actor or "library", action, target, audit_detail(detail)))


class PgUsageStore(UsageTally):
    """Usage on PostgreSQL: each replica's in-memory tally is added to the shared rows by its flushes."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._db = _Connection(url, _USAGE_SCHEMA)

    def _write(self, rows: builtins.list[Tally]) -> None:
        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(_USAGE_UPSERT, rows)

        self._db.run(work)

    def _select(self, since: str | None, until: str | None, user: str | None,
                limit: int) -> builtins.list[UsageRow]:
        sql, args = select_usage(since, until, user, limit, param="%s", user_column='"user"')
        rows = self._db.run(lambda conn: conn.execute(sql, args).fetchall())
        return [UsageRow(*r) for r in rows]

    def _close(self) -> None:
        self._db.close()
