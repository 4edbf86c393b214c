"""The crash-safe row cache: SQLite (WAL), one committed row per finished answer."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..client.events import Usage


@runtime_checkable
class RowStore(Protocol):
    """Where a batch keeps finished rows: `RowCache` (one kernel), `cluster.RedisRowStore` (every worker)."""

    def row_key(self, index: int, content_key: str) -> str:
        """The key of row ``index`` whose request hashes to ``content_key``."""
        ...

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, Usage | None]]: ...

    def put(self, key: str, text: str, usage: Usage | None, prompt: str) -> None: ...

    def close(self) -> None: ...


class RowCache:
    """Finished rows in SQLite: one row per cache key, committed as each batch row succeeds.

    WAL with synchronous=NORMAL: a commit survives the process being killed (it only waits for the OS,
    not the disk), and readers — another kernel on the same file — never block the writer.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit (isolation_level=None): every INSERT is its own transaction, committed at once.
        # check_same_thread=False: map_sync looks rows up in the caller's thread, then the private loop
        # writes; the two never overlap.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS ernie_rows (key TEXT PRIMARY KEY, text TEXT NOT NULL, usage TEXT, "
            "prompt TEXT, created REAL NOT NULL)"
        )

    @staticmethod
    def row_key(index: int, content_key: str) -> str:
        # by content alone: the same request in another batch, another order or another kernel is a hit
        return content_key

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, Usage | None]]:
        found: dict[str, tuple[str, Usage | None]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # SQLite's default limit on host parameters is 999+
            part = unique[start:start + 500]
            marks = ",".join("?" * len(part))
            for key, text, usage in self._db.execute(
                f"SELECT key, text, usage FROM ernie_rows WHERE key IN ({marks})", part
            ):
                found[key] = (text, Usage.from_dict(json.loads(usage)) if usage else None)
        return found

    def put(self, key: str, text: str, usage: Usage | None, prompt: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO ernie_rows (key, text, usage, prompt, created) VALUES (?, ?, ?, ?, ?)",
            (key, text, json.dumps(usage.to_dict()) if usage else None, prompt, time.time()),
        )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM ernie_rows").fetchone()[0])

    def close(self) -> None:
        self._db.close()
