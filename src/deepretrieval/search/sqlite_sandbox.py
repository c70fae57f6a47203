"""A read-only SQLite sandbox for model-written SQL: rows, or a typed verdict.

The original DeepRetrieval ran model SQL on a writable copy of the benchmark database and turned a timeout
into an empty result (which then matched an empty gold result). Here every query is refused or stopped by
SQLite itself, in layers that each hold on their own:

1. ``sqlglot`` parses the text first: one statement, and that a SELECT (``WITH … SELECT``, ``UNION`` …
   included); anything else is ``refused`` before SQLite sees it, a text it cannot parse ``syntax_error``.
2. The database is opened read-only (``file:…?mode=ro``): no write reaches the file.
3. An authorizer allows only reading (SQLITE_SELECT, SQLITE_READ, SQLITE_FUNCTION and SQLITE_RECURSIVE for
   ``WITH RECURSIVE``) and denies everything else: ATTACH (``mode=ro`` alone still lets ATTACH create a
   file), PRAGMA (``PRAGMA query_only`` could be switched off by the SQL itself), transactions, VACUUM,
   writes; ``load_extension`` (and ``fts3_tokenizer``) are denied by name (and extension loading is never
   enabled on the connection).
4. Limits inside SQLite: no attached databases (``SQLITE_LIMIT_ATTACHED`` 0), a statement length
   (``SQLITE_LIMIT_SQL_LENGTH``), a value length (``SQLITE_LIMIT_LENGTH``: no gigabyte ``zeroblob``), and a
   deadline checked by a progress handler every thousand virtual machine instructions, which interrupts
   the statement in SQLite (a thread-based timeout would leave it running). Rows are fetched up to the cap
   plus one: one more row is ``too_many_rows``, never a cut result.

A verdict other than ``ok`` is never an empty result: :class:`QueryResult` carries ``rows`` only when the
query ran to its end.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

VERDICTS = ("ok", "syntax_error", "runtime_error", "refused", "timeout", "too_many_rows")

# Authorizer action codes that only read. SQLITE_RECURSIVE is the recursive CTE's own code (a read).
_READING = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
)
# load_extension would run native code; fts3_tokenizer with two arguments takes a pointer.
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})
# The longest string or blob a query may build (zeroblob(1e9) would take a gigabyte of memory).
MAX_VALUE_BYTES = 16_000_000
# How many virtual machine instructions run between two looks at the clock: a few microseconds apart.
_PROGRESS_EVERY = 1000


@dataclass(frozen=True)
class SandboxLimits:
    """What one query may take: seconds of SQLite work, rows, and characters of SQL."""

    timeout_seconds: float = 5.0
    max_rows: int = 10_000
    max_sql_chars: int = 20_000


@dataclass(frozen=True)
class QueryResult:
    """A query's rows (``verdict`` "ok"), or its verdict and a one-line ``message`` (``rows`` None)."""

    verdict: str
    rows: tuple[tuple[Any, ...], ...] | None = None
    columns: tuple[str, ...] = ()
    message: str = ""
    seconds: float = field(default=0.0, compare=False)

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


def check_read_only(sql: str) -> QueryResult | None:
    """sqlglot's reading of ``sql``: None when it is one SELECT statement, else the verdict (``syntax_error``
    for text it cannot parse, ``refused`` for more than one statement or anything but a SELECT)."""
    import sqlglot
    from sqlglot import exp

    try:
        # sqlglot logs a warning for syntax it parses as an opaque command (VACUUM INTO …): refused anyway.
        logging.getLogger("sqlglot").setLevel(logging.ERROR)
        statements = [s for s in sqlglot.parse(sql, read="sqlite") if s is not None]
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        return QueryResult("syntax_error", message=_one_line(exc))
    if not statements:
        return QueryResult("syntax_error", message="no statement")
    if len(statements) > 1:
        return QueryResult("refused", message=f"{len(statements)} statements (one SELECT only)")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        return QueryResult("refused", message=f"not a SELECT ({statement.key.upper()})")
    writes = (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Command, exp.Pragma, exp.Attach)
    if any(isinstance(node, writes) for node in statement.walk()):
        return QueryResult("refused", message="a SELECT holding a statement that is not one")
    return None


@functools.lru_cache(maxsize=65_536)  # asked of every gold query at every execution
def has_order_by(sql: str) -> bool:
    """Whether the outermost query of ``sql`` orders its rows (the Spider test-suite rule: row order counts
    only then); False for text sqlglot cannot parse."""
    import sqlglot

    try:
        statement = sqlglot.parse_one(sql, read="sqlite")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return False
    return statement.args.get("order") is not None


def _authorize(action: int, arg1: str | None, arg2: str | None, database: str | None, trigger: str | None) -> int:
    if action not in _READING:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def open_read_only(path: Path, limits: SandboxLimits) -> sqlite3.Connection:
    """``path`` opened read-only with the sandbox's authorizer and limits (DataError: no such database)."""
    if not path.is_file():
        raise DataError(path, "no such database file")
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    connection.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, max(limits.max_sql_chars * 4, 1000))
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    connection.set_authorizer(_authorize)
    return connection


def run_query(connection: sqlite3.Connection, sql: str, limits: SandboxLimits) -> QueryResult:
    """``sql`` run on an open sandbox ``connection``: its rows or its verdict."""
    started = time.perf_counter()
    if len(sql) > limits.max_sql_chars:
        return QueryResult("refused", message=f"{len(sql):,} characters of SQL (at most {limits.max_sql_chars:,})")
    checked = check_read_only(sql)
    if checked is not None:
        return checked
    deadline = started + limits.timeout_seconds
    stopped = []

    def past_deadline() -> int:
        if time.perf_counter() > deadline:
            stopped.append(True)
            return 1  # non-zero: SQLite interrupts the statement
        return 0

    connection.set_progress_handler(past_deadline, _PROGRESS_EVERY)
    try:
        cursor = connection.execute(sql)
        rows = cursor.fetchmany(limits.max_rows + 1)
        columns = tuple(d[0] for d in cursor.description or ())
        cursor.close()
    except sqlite3.Error as exc:
        seconds = time.perf_counter() - started
        if stopped:
            return QueryResult("timeout", message=f"stopped after {limits.timeout_seconds:g} s", seconds=seconds)
        return QueryResult(_verdict_of(exc), message=_one_line(exc), seconds=seconds)
    except sqlite3.Warning as exc:  # "You can only execute one statement at a time."
        return QueryResult("refused", message=_one_line(exc))
    finally:
        connection.set_progress_handler(None, 0)
    seconds = time.perf_counter() - started
    if len(rows) > limits.max_rows:
        return QueryResult("too_many_rows", message=f"more than {limits.max_rows:,} rows", seconds=seconds)
    return QueryResult("ok", tuple(tuple(r) for r in rows), columns, seconds=seconds)


# SQLite's words for the authorizer's denials and for statements past a limit (SQL length, attached databases).
_REFUSALS = ("authoriz", "too many attached", "too big", "too long", "too large", "one statement")


def _verdict_of(exc: sqlite3.Error) -> str:
    text = str(exc).lower()
    if any(word in text for word in _REFUSALS):
        return "refused"
    if any(word in text for word in ("syntax error", "incomplete input", "unrecognized token")):
        return "syntax_error"
    return "runtime_error"


def _one_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # sqlglot underlines the offending token for a terminal
    return " ".join(text.split())[:300]


class GoldCache:
    """Gold results on disk, keyed by the database file's SHA-256 and the query: a second run (or a second
    process) reads them instead of running the gold queries again; an edited database has another hash.
    Values are stored as JSON (bytes as ``{"hex": …}``), so that reading the cache runs no code."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS gold (db_sha256 TEXT, sql TEXT, columns TEXT, rows TEXT, "
            "PRIMARY KEY (db_sha256, sql))"
        )
        self._hashes: dict[tuple[Path, int, int], str] = {}

    def file_hash(self, file: Path, stat: os.stat_result) -> str:
        key = (file, stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            digest = hashlib.sha256()
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            self._hashes[key] = digest.hexdigest()
        return self._hashes[key]

    def get(self, sha: str, sql: str) -> QueryResult | None:
        row = self._db.execute("SELECT columns, rows FROM gold WHERE db_sha256 = ? AND sql = ?", (sha, sql)).fetchone()
        if row is None:
            return None
        rows = tuple(tuple(_decoded(v) for v in r) for r in json.loads(row[1]))
        return QueryResult("ok", rows, tuple(json.loads(row[0])))

    def put(self, sha: str, sql: str, result: QueryResult) -> None:
        rows = [[_encoded(v) for v in r] for r in result.rows or ()]
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO gold VALUES (?, ?, ?, ?)",
                (sha, sql, json.dumps(list(result.columns)), json.dumps(rows)),
            )


def _encoded(value: Any) -> Any:
    return {"hex": bytes(value).hex()} if isinstance(value, bytes | memoryview) else value


def _decoded(value: Any) -> Any:
    return bytes.fromhex(value["hex"]) if isinstance(value, dict) else value


class SQLiteSandbox:
    """Runs batches of (database file, SQL) in the sandbox, one read-only connection per database file.
    ``gold_cache``: a file that keeps gold results across runs (:class:`GoldCache`); None: in memory only."""

    def __init__(self, limits: SandboxLimits | None = None, *, gold_cache: Path | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self._connections: dict[Path, sqlite3.Connection] = {}
        self._gold: dict[tuple[Path, int, int, str], QueryResult] = {}
        self.gold_cache = GoldCache(gold_cache) if gold_cache is not None else None

    def connection(self, path: str | Path) -> sqlite3.Connection:
        key = Path(path)
        if key not in self._connections:
            self._connections[key] = open_read_only(key, self.limits)
        return self._connections[key]

    def run(self, path: str | Path, sql: str) -> QueryResult:
        return run_query(self.connection(path), sql, self.limits)

    def run_many(self, requests: Sequence[tuple[str | Path, str]]) -> list[QueryResult]:
        return [self.run(path, sql) for path, sql in requests]

    def gold(self, path: str | Path, sql: str, *, source: str | Path, record: str) -> QueryResult:
        """The gold query's result, run once per database file (as it is now) and query. A gold query that
        does not run is the data's fault: DataError naming the data file ``source`` and its ``record``."""
        file = Path(path)
        try:
            stat = file.stat()
        except OSError:
            raise DataError(source, f"record {record}: no such database file {file}") from None
        key = (file, stat.st_size, stat.st_mtime_ns, sql)
        if key in self._gold:
            return self._gold[key]
        sha = self.gold_cache.file_hash(file, stat) if self.gold_cache is not None else ""
        saved = self.gold_cache.get(sha, sql) if self.gold_cache is not None else None
        if saved is not None:
            self._gold[key] = saved
        else:
            try:
                result = self.run(file, sql)
            except sqlite3.DatabaseError as exc:  # not a database: opening it read-only succeeds, reading fails
                raise DataError(source, f"record {record}: {file} is no SQLite database ({exc})") from None
            if not result.ok:
                raise DataError(
                    source, f"record {record}: the gold SQL gives {result.verdict} on {file.name}: {result.message}"
                )
            self._gold[key] = result
            if self.gold_cache is not None:
                self.gold_cache.put(sha, sql, result)
        return self._gold[key]

    def describe(self) -> dict[str, object]:
        return {
            "kind": "sqlite",
            "timeout_seconds": self.limits.timeout_seconds,
            "max_rows": self.limits.max_rows,
            "max_sql_chars": self.limits.max_sql_chars,
        }  # the gold cache aside: it changes no result

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
