"""The persistent search-result cache of the HTTP backends (:class:`ResultCache`) and its key (:func:`cache_key`).

SQLite in WAL mode: any number of concurrent readers, across processes too. A row is keyed by the service,
the endpoint, the normalised query and every parameter that shapes the result; it records when it was
fetched, and the cache keeps under a size cap by dropping the rows fetched longest ago. Failures are never
cached (the caller stores only results).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SearchFailure


def cache_key(service: str, endpoint: str, params: Mapping[str, str], k: int) -> str:
    """The cache key of one search: service, endpoint, every result-shaping parameter, and k."""
    material = json.dumps({"service": service, "endpoint": endpoint, "params": dict(params), "k": k}, sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class ResultCache:
    """Search results on disk (SQLite, WAL: concurrent readers never wait for a writer).

    One row per search: its key, the request it answers (no credentials: for people reading the file),
    the result as JSON, its size and when it was fetched. Over ``max_bytes`` the rows fetched longest ago
    go first (down to 90% of the cap); rows older than ``max_age`` seconds count as absent.
    """

    _PRUNE_EVERY = 64  # writes between two checks of the total size

    def __init__(self, path: str | Path, *, max_bytes: int = 1 << 30, max_age: float | None = None) -> None:
        self.path = Path(path)
        self.max_bytes, self.max_age = max_bytes, max_age
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._writes = 0
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL never corrupts the file; a power cut may lose the last writes: refetched later.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, service TEXT NOT NULL, "
                "request TEXT NOT NULL, value TEXT NOT NULL, size INTEGER NOT NULL, fetched_at REAL NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS results_fetched_at ON results (fetched_at)")
        except sqlite3.Error as e:
            raise SearchFailure(f"cannot open the search cache {self.path}: {e}") from None

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock, self._errors("read"):
            row = self._db.execute("SELECT value, fetched_at FROM results WHERE key = ?", (key,)).fetchone()
        if row is None or (self.max_age is not None and time.time() - row[1] > self.max_age):
            return None
        return json.loads(row[0])

    def put(self, key: str, service: str, request: Mapping[str, Any], value: Mapping[str, Any]) -> None:
        text = json.dumps(value, separators=(",", ":"))
        row = (key, service, json.dumps(dict(request), sort_keys=True), text, len(text), time.time())
        with self._lock, self._errors("write"):
            self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)", row)
            self._writes += 1
            if self._writes % self._PRUNE_EVERY == 1 or len(text) > self.max_bytes // 10:
                self._prune()

    def fetched_at(self, key: str) -> float | None:
        with self._lock, self._errors("read"):
            row = self._db.execute("SELECT fetched_at FROM results WHERE key = ?", (key,)).fetchone()
        return None if row is None else float(row[0])

    def __len__(self) -> int:
        with self._lock, self._errors("read"):
            return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _prune(self) -> None:
        total = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM results").fetchone()[0]
        if total <= self.max_bytes:
            return
        excess, doomed = total - int(self.max_bytes * 0.9), []
        for key, size in self._db.execute("SELECT key, size FROM results ORDER BY fetched_at"):
            if excess <= 0:
                break
            doomed.append((key,))
            excess -= size
        self._db.executemany("DELETE FROM results WHERE key = ?", doomed)

    def _errors(self, doing: str):
        return _SqliteErrors(f"the search cache {self.path} failed to {doing}")


class _SqliteErrors:
    """Turn SQLite's errors (a full disk, a locked or damaged file) into SearchFailure."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, sqlite3.Error):
            raise SearchFailure(f"{self.message}: {exc}") from None
        return False
