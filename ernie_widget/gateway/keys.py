"""Per-user API keys in a small SQLite file, stored only as HMAC-SHA256 digests.

A key is ``ewk_`` + 43 URL-safe characters (256 random bits), shown once by ``keys add``. The file
keeps ``hmac(secret, key)``, never the key, so a copied database does not let anyone in. The HMAC
secret is ``$ERNIE_GATEWAY_KEY_SECRET`` or, when unset, a random one kept beside the database in
``<db>.secret`` (mode 0600); every process serving the same file needs the same secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KEY_PREFIX", "KeyRecord", "KeyStore", "new_key", "valid_name"]

KEY_PREFIX = "ewk_"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    rpm INTEGER,
    tpm INTEGER,
    daily_tokens INTEGER,
    created REAL NOT NULL,
    revoked REAL
);
"""


#: what a key's name may be: it appears in `keys list`, the access log and the limits' keys, so no
#: whitespace, no control characters, nothing that could forge a row or a log field
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


def valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def new_key() -> str:
    """A fresh high-entropy key: ``ewk_`` + 256 random bits, URL-safe base64."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyRecord:
    """One user's key, without the key: its name, limits and state."""

    name: str
    hint: str  # the first characters, so a user can tell which key is which
    rpm: int | None
    tpm: int | None
    daily_tokens: int | None
    created: float
    revoked: float | None

    @property
    def active(self) -> bool:
        return self.revoked is None


class KeyStore:
    """Add, look up, list and revoke keys. Thread-safe; every call is one short SQLite transaction."""

    def __init__(self, path: str | os.PathLike[str], secret: bytes | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._secret = secret or _load_secret(self.path)
        self._lock = threading.Lock()
        # check_same_thread=False: the lock serialises use across the server's threads
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)

    def digest(self, key: str) -> str:
        return hmac.new(self._secret, key.encode("utf-8"), hashlib.sha256).hexdigest()

    def add(self, name: str, *, rpm: int | None = None, tpm: int | None = None,
            daily_tokens: int | None = None) -> str:
        """Create a key for ``name`` and return it — the only time it is ever seen. A revoked name may be reused."""
        if not valid_name(name):
            raise ValueError(f"无效的名字 / invalid key name {name!r}: use 1-64 letters, digits and . _ @ + - "
                             "(starting with a letter or digit)")
        key = new_key()
        with self._lock:
            row = self._db.execute("SELECT revoked FROM keys WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] is None:
                raise ValueError(f"an active key named {name!r} exists; revoke it first")
            self._db.execute(
                "INSERT OR REPLACE INTO keys (name, digest, hint, rpm, tpm, daily_tokens, created, revoked) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (name, self.digest(key), key[:8], rpm, tpm, daily_tokens, time.time()),
            )
        return key

    def lookup(self, key: str) -> KeyRecord | None:
        """The record of ``key`` (revoked ones too), or None for a key that was never issued."""
        with self._lock:
            row = self._db.execute(
                "SELECT name, hint, rpm, tpm, daily_tokens, created, revoked FROM keys WHERE digest = ?",
                (self.digest(key),),
            ).fetchone()
        return KeyRecord(*row) if row else None

    def list(self) -> list[KeyRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, hint, rpm, tpm, daily_tokens, created, revoked FROM keys ORDER BY name"
            ).fetchall()
        return [KeyRecord(*r) for r in rows]

    def revoke(self, name: str) -> bool:
        """Revoke the key of ``name``; False when there is no active key of that name."""
        with self._lock:
            cur = self._db.execute("UPDATE keys SET revoked = ? WHERE name = ? AND revoked IS NULL",
                                   (time.time(), name))
        return cur.rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._db.close()


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

