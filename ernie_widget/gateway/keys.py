"""Per-user API keys in a small SQLite file, stored only as HMAC-SHA256 digests, and the audit log of admin actions.

A key is ``ewk_`` + 43 URL-safe characters (256 random bits), shown once by ``keys add``. The file
keeps ``hmac(secret, key)``, never the key, so a copied database does not let anyone in. The HMAC
secret is ``$ERNIE_GATEWAY_KEY_SECRET`` or, when unset, a random one kept beside the database in
``<db>.secret`` (mode 0600); every process serving the same file needs the same secret.

A key may expire, may be limited to some models, and is rotated without a gap: `KeyStore.rotate` issues a new key
with the same limits and lets the old one live for a grace period, so both work while clients move over. Every
change made through the CLI or the admin API is one row of the ``audit`` table (who, what, on which name, when).

`KeyStore` is SQLite, for one process (or several on one machine). Replicas behind a load balancer share a
PostgreSQL database instead: `open_keys` picks `store_pg.PgKeyStore` for a ``postgresql://`` URL. Both implement
`KeyStorage`; the SQL of each backend stays in its own module.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["KEY_PREFIX", "AuditEntry", "KeyRecord", "KeyStorage", "KeyStore", "StoreUnavailable", "is_database_url",
           "key_secret", "new_key", "open_keys", "valid_name"]

KEY_PREFIX = "ewk_"

# One row per key, so a user can hold two during a rotation. ``models``: a JSON list of the model names the key may
# ask for (NULL: any the gateway allows). ``expires``/``revoked``: Unix times, NULL when not.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    rpm INTEGER,
    tpm INTEGER,
    daily_tokens INTEGER,
    models TEXT,
    created REAL NOT NULL,
    expires REAL,
    revoked REAL
);
CREATE INDEX IF NOT EXISTS api_keys_name ON api_keys (name);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""

# the first release kept one row per name in ``keys``; its rows move to ``api_keys`` once, in one transaction
_MIGRATE_V1 = """
INSERT INTO api_keys (name, digest, hint, rpm, tpm, daily_tokens, created, revoked)
    SELECT name, digest, hint, rpm, tpm, daily_tokens, created, revoked FROM keys;
DROP TABLE keys;
"""

_COLUMNS = "id, name, hint, rpm, tpm, daily_tokens, models, created, expires, revoked"

#: what a key's name may be: it appears in `keys list`, the access log and the limits' keys, so no
#: whitespace, no control characters, nothing that could forge a row or a log field
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
#: a model name in an allow-list: what the upstream APIs accept, nothing that could forge a log field
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+-]{0,127}")


def valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def new_key() -> str:
    """A fresh high-entropy key: ``ewk_`` + 256 random bits, URL-safe base64."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyRecord:
    """One key, without the key: its user's name, limits, allowed models and state."""

    id: int
    name: str
    hint: str  # the first characters, so a user can tell which key is which
    rpm: int | None
    tpm: int | None
    daily_tokens: int | None
    models: tuple[str, ...] | None  # None: any model the gateway allows
    created: float
    expires: float | None
    revoked: float | None

    @property
    def expired(self) -> bool:
        return self.expires is not None and self.expires <= time.time()

    @property
    def active(self) -> bool:
        return self.revoked is None and not self.expired

    @property
    def state(self) -> str:
        return "revoked" if self.revoked is not None else "expired" if self.expired else "active"

    def public(self) -> dict[str, Any]:
        """The record as the admin API and ``keys list --json`` show it (never the key, never its digest)."""
        return {"name": self.name, "hint": self.hint, "rpm": self.rpm, "tpm": self.tpm,
                "daily_tokens": self.daily_tokens, "models": list(self.models) if self.models is not None else None,
                "created": self.created, "expires": self.expires, "revoked": self.revoked, "state": self.state}


@dataclass(frozen=True)
class AuditEntry:
    """One admin action: ``actor`` did ``action`` (add, rotate, revoke) on ``target`` at ``ts``."""

    ts: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]

    def public(self) -> dict[str, Any]:
        return {"ts": self.ts, "actor": self.actor, "action": self.action, "target": self.target,
                "detail": self.detail}


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not valid_name(name):
        raise ValueError(f"无效的名字 / invalid key name {name!r}: use 1-64 letters, digits and . _ @ + - "
                         "(starting with a letter or digit)")


def _check_models(models: tuple[str, ...] | list[str] | None) -> str | None:
    if models is None:
        return None
    models = tuple(models)
    if not models or len(models) > 64 or not all(isinstance(m, str) and _MODEL.fullmatch(m) for m in models):
        raise ValueError("无效的模型列表 / invalid model allow-list: 1-64 model names (letters, digits, . _ : / + -)")
    return json.dumps(sorted(set(models)))


def _check_limit(label: str, value: int | float | None, *, seconds: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or value != value \
            or value > (10 * 365 * 86400 if seconds else 10**12):
        raise ValueError(f"无效的 {label} / invalid {label}: {value!r} (a positive number)")


@runtime_checkable
class KeyStorage(Protocol):
    """What the gateway, the admin API and the CLI need of a keys backend (SQLite `KeyStore`, `PgKeyStore`)."""

    def digest(self, key: str) -> str: ...

    def add(self, name: str, *, rpm: int | None = None, tpm: int | None = None, daily_tokens: int | None = None,
            models: tuple[str, ...] | list[str] | None = None, expires_in: float | None = None,
            actor: str | None = None) -> str: ...

    def rotate(self, name: str, *, grace: float = 86400.0, expires_in: float | None = None,
               actor: str | None = None) -> str: ...

    def lookup(self, key: str) -> KeyRecord | None: ...

    def list(self) -> builtins.list[KeyRecord]: ...

    def revoke(self, name: str, *, actor: str | None = None) -> bool: ...

    def audit(self, limit: int = 100) -> builtins.list[AuditEntry]: ...

    def close(self) -> None: ...


class StoreUnavailable(ConnectionError):
    """The keys database cannot be reached (the gateway answers 503 ``keys_unavailable``, not a 500)."""


def is_database_url(target: object) -> bool:
    """True for a PostgreSQL URL (``postgresql://…``, ``postgres://…``), False for a SQLite file path."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def open_keys(target: str | os.PathLike[str], secret: bytes | None = None) -> KeyStorage:
    """The keys backend for ``target``: `PgKeyStore` for a PostgreSQL URL, else a SQLite `KeyStore` file."""
    if is_database_url(target):
        from .store_pg import PgKeyStore

        return PgKeyStore(str(target), secret)
    return KeyStore(target, secret)


def key_secret() -> bytes:
    """The HMAC secret replicas on a shared database use: ``$ERNIE_GATEWAY_KEY_SECRET``, required (there is no
    file beside a PostgreSQL database to keep a generated one in, and every replica must use the same)."""
    env = os.environ.get("ERNIE_GATEWAY_KEY_SECRET")
    if not env or len(env) < 16:
        raise ValueError("缺少 ERNIE_GATEWAY_KEY_SECRET / set ERNIE_GATEWAY_KEY_SECRET (at least 16 characters, the "
                         "same on every replica) to use a PostgreSQL keys database, e.g. "
                         "export ERNIE_GATEWAY_KEY_SECRET=$(python -c 'import secrets; print(secrets.token_hex(32))')")
    return env.encode("utf-8")


def hmac_digest(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode("utf-8"), hashlib.sha256).hexdigest()


def check_add(name: str, rpm: int | None, tpm: int | None, daily_tokens: int | None,
              models: tuple[str, ...] | builtins.list[str] | None, expires_in: float | None) -> str | None:
    """Validate `KeyStorage.add`'s arguments (either backend); the models as the JSON stored."""
    _check_name(name)
    for label, value in (("rpm", rpm), ("tpm", tpm), ("daily_tokens", daily_tokens)):
        _check_limit(label, value)
    _check_limit("expires_in", expires_in, seconds=True)
    return _check_models(models)


def check_rotate(name: str, grace: float, expires_in: float | None) -> None:
    """Validate `KeyStorage.rotate`'s arguments (either backend)."""
    _check_name(name)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace <= 30 * 86400:
        raise ValueError("无效的宽限期 / invalid grace: 0 to 30 days, in seconds")
    _check_limit("expires_in", expires_in, seconds=True)


def audit_detail(detail: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in detail.items() if v is not None}, ensure_ascii=False)


class KeyStore:
    """Add, look up, list, rotate and revoke keys; record and read the audit log. Thread-safe; every call is one
    short SQLite transaction."""

    def __init__(self, path: str | os.PathLike[str], secret: bytes | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._secret = secret or _load_secret(self.path)
        self._lock = threading.Lock()
        # check_same_thread=False: the lock serialises use across the server's threads
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                old = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'keys'").fetchone()
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                if old:
                    for statement in _MIGRATE_V1.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)

    def digest(self, key: str) -> str:
        return hmac_digest(self._secret, key)

    def add(self, name: str, *, rpm: int | None = None, tpm: int | None = None, daily_tokens: int | None = None,
            models: tuple[str, ...] | list[str] | None = None, expires_in: float | None = None,
            actor: str | None = None) -> str:
        """Create a key for ``name`` and return it — the only time it is ever seen. A name whose keys were all
        revoked or expired may be reused; one with an active key must `rotate` instead."""
        models_json = check_add(name, rpm, tpm, daily_tokens, models, expires_in)
        key = new_key()
        now = time.time()
        with self._lock:
            if self._active_rows(name, now):
                raise ValueError(f"{name!r} 已有有效的 key / an active key named {name!r} exists; revoke or rotate it")
            self._insert(name, key, rpm, tpm, daily_tokens, models_json, now,
                         None if expires_in is None else now + expires_in)
            self._audit(actor, "add", name, {"rpm": rpm, "tpm": tpm, "daily_tokens": daily_tokens,
                                             "models": json.loads(models_json) if models_json else None,
                                             "expires_in": expires_in, "hint": key[:8]})
        return key

    def rotate(self, name: str, *, grace: float = 86400.0, expires_in: float | None = None,
               actor: str | None = None) -> str:
        """A new key for ``name`` with the same limits and models; the old active keys stop working after
        ``grace`` seconds (sooner if they expire sooner), so clients move over without a gap. Returns the new key."""
        check_rotate(name, grace, expires_in)
        key = new_key()
        now = time.time()
        with self._lock:
            rows = self._active_rows(name, now)
            if not rows:
                raise ValueError(f"{name!r} 没有有效的 key / no active key named {name!r} to rotate (use keys add)")
            newest = rows[-1]
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("UPDATE api_keys SET expires = MIN(COALESCE(expires, ?1), ?1) "
                                 "WHERE name = ?2 AND revoked IS NULL AND (expires IS NULL OR expires > ?3)",
                                 (now + grace, name, now))
                self._insert(name, key, newest.rpm, newest.tpm, newest.daily_tokens,
                             json.dumps(list(newest.models)) if newest.models is not None else None, now,
                             None if expires_in is None else now + expires_in)
                self._audit(actor, "rotate", name, {"grace": grace, "expires_in": expires_in, "hint": key[:8],
                                                    "old": [r.hint for r in rows]})
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return key

    def lookup(self, key: str) -> KeyRecord | None:
        """The record of ``key`` (revoked and expired ones too), or None for a key that was never issued."""
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE digest = ?",
                                   (self.digest(key),)).fetchone()
        return record_from_row(row) if row else None

    def list(self) -> list[KeyRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY name, id").fetchall()
        return [record_from_row(r) for r in rows]

    def revoke(self, name: str, *, actor: str | None = None) -> bool:
        """Revoke every key of ``name`` at once; False when it has no active key."""
        now = time.time()
        with self._lock:
            cur = self._db.execute("UPDATE api_keys SET revoked = ? WHERE name = ? AND revoked IS NULL "
                                   "AND (expires IS NULL OR expires > ?)", (now, name, now))
            if cur.rowcount > 0:
                self._audit(actor, "revoke", name, {"keys": cur.rowcount})
        return cur.rowcount > 0

    def audit(self, limit: int = 100) -> builtins.list[AuditEntry]:
        """The most recent admin actions, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT ts, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?",
                                    (max(1, min(int(limit), 10_000)),)).fetchall()
        return [AuditEntry(ts, actor, action, target, json.loads(detail)) for ts, actor, action, target, detail in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- inside the lock --------------------------------------------------------------------------------

    def _active_rows(self, name: str, now: float) -> builtins.list[KeyRecord]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE name = ? AND revoked IS NULL "
                                "AND (expires IS NULL OR expires > ?) ORDER BY id", (name, now)).fetchall()
        return [record_from_row(r) for r in rows]

    def _insert(self, name: str, key: str, rpm: int | None, tpm: int | None, daily_tokens: int | None,
                models_json: str | None, now: float, expires: float | None) -> None:
        self._db.execute(
            "INSERT INTO api_keys (name, digest, hint, rpm, tpm, daily_tokens, models, created, expires, revoked) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (name, self.digest(key), key[:8], rpm, tpm, daily_tokens, models_json, now, expires))

    def _audit(self, actor: str | None, action: str, target: str, detail: dict[str, Any]) -> None:
        self._db.execute("INSERT INTO audit (ts, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                         (time.time(), actor or "library", action, target, audit_detail(detail)))


def record_from_row(row: tuple[Any, ...]) -> KeyRecord:
    """A `KeyRecord` from a row of ``_COLUMNS`` (the same columns in either backend)."""
    (id_, name, hint, rpm, tpm, daily, models, created, expires, revoked) = row
    return KeyRecord(id_, name, hint, rpm, tpm, daily, tuple(json.loads(models)) if models else None, created,
                     expires, revoked)


def _load_secret(db: Path) -> bytes:
    env = os.environ.get("ERNIE_GATEWAY_KEY_SECRET")
    if env:
        return env.encode("utf-8")
    path = db.with_name(db.name + ".secret")
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_hex(32).encode()
    # O_EXCL: two processes creating the store at once agree on whichever secret was written first
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    return value

