"""The read-only SQLite sandbox: every attempt to write, escape or hang is refused or stopped, and the database
file is unchanged afterwards (its SHA-256), with no file created beside it.

Each hostile statement is tried twice: through the sandbox (sqlglot's check first), and straight on a sandbox
connection (the engine-level guards alone: ``mode=ro``, the authorizer, the limits), so that each line of
defence is shown to hold without the other."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from deepretrieval.search.sqlite_sandbox import (
    SandboxLimits,
    SQLiteSandbox,
    check_read_only,
    has_order_by,
    open_read_only,
)

LIMITS = SandboxLimits(timeout_seconds=0.5, max_rows=50, max_sql_chars=20_000)


@pytest.fixture()
def database(tmp_path: Path) -> Path:
    folder = tmp_path / "db"
    folder.mkdir()
    path = folder / "shop.sqlite"
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL);"
        "INSERT INTO items VALUES (1, 'pen', 1.5), (2, 'ink', NULL), (3, 'pad', 4.0), (4, 'cap', 0.5);"
    )
    connection.commit()
    connection.close()
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


HOSTILE = {
    "drop": "DROP TABLE items",
    "delete": "DELETE FROM items",
    "update": "UPDATE items SET price = 0",
    "insert": "INSERT INTO items VALUES (9, 'x', 1)",
    "create": "CREATE TABLE evil (x)",
    "attach": "ATTACH DATABASE '{folder}/evil.sqlite' AS evil",
    "pragma_write": "PRAGMA user_version = 7",
    "pragma_query_only_off": "PRAGMA query_only = 0",
    "pragma_journal": "PRAGMA journal_mode = WAL",
    "vacuum_into": "VACUUM INTO '{folder}/copy.sqlite'",
    "begin": "BEGIN IMMEDIATE",
    "load_extension": "SELECT load_extension('{folder}/evil.so')",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_statement_that_is_no_plain_read_is_refused_and_changes_nothing(database, name):
    before, files = digest(database), listing(database)
    sql = HOSTILE[name].format(folder=database.parent)
    result = SQLiteSandbox(LIMITS).run(database, sql)
    assert result.verdict == "refused" and result.rows is None, result
    assert digest(database) == before
    assert listing(database) == files  # ATTACH and VACUUM INTO created no file


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_engine_refuses_it_too_without_sqlglot(database, name):
    """Straight on a sandbox connection: SQLite's own guards (mode=ro, the authorizer, the limits)."""
    before, files = digest(database), listing(database)
    connection = open_read_only(database, LIMITS)
    with pytest.raises(sqlite3.DatabaseError):
        connection.execute(HOSTILE[name].format(folder=database.parent)).fetchall()
    connection.close()
    assert digest(database) == before
    assert listing(database) == files


def test_the_connection_carries_sqlites_own_limits(database):
    connection = open_read_only(database, LIMITS)
    assert connection.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED) == 0
    assert connection.getlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH) < 1_000_000
    connection.close()


def test_query_only_switched_off_by_the_sql_still_cannot_write(database):
    before = digest(database)
    connection = open_read_only(database, LIMITS)
    with pytest.raises(sqlite3.DatabaseError):
        connection.execute("PRAGMA query_only = 0")
    with pytest.raises(sqlite3.DatabaseError):
        connection.execute("DELETE FROM items")
    connection.close()
    assert digest(database) == before


def test_two_statements_are_refused_by_either_line(database):
    before = digest(database)
    result = SQLiteSandbox(LIMITS).run(database, "SELECT 1; DELETE FROM items")
    assert result.verdict == "refused"
    connection = open_read_only(database, LIMITS)
    with pytest.raises((sqlite3.Warning, sqlite3.ProgrammingError)):  # "one statement at a time"
        connection.execute("SELECT 1; SELECT 2")
    connection.close()
    assert digest(database) == before


def test_load_extension_fails_even_as_a_function_call(database):
    connection = open_read_only(database, LIMITS)
    with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
        connection.execute("SELECT load_extension('/nonexistent/x.so')")
    with pytest.raises(AttributeError if not hasattr(connection, "load_extension") else sqlite3.OperationalError):
        connection.load_extension("/nonexistent/x.so")  # never enabled on the connection
    connection.close()


def test_a_recursive_cte_that_never_ends_is_stopped_within_the_limit(database):
    before = digest(database)
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    started = time.perf_counter()
    result = SQLiteSandbox(LIMITS).run(database, sql)
    elapsed = time.perf_counter() - started
    assert result.verdict == "timeout" and result.rows is None
    assert LIMITS.timeout_seconds <= elapsed < LIMITS.timeout_seconds + 1.0
    assert digest(database) == before


def test_the_connection_is_usable_after_a_timeout(database):
    sandbox = SQLiteSandbox(LIMITS)
    sandbox.run(database, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c")
    assert sandbox.run(database, "SELECT count(*) FROM items").rows == ((4,),)


def test_a_cartesian_product_past_the_row_cap_is_too_many_rows(database):
    # 4 x 4 x 4 = 64 rows > 50: never a cut result
    result = SQLiteSandbox(LIMITS).run(database, "SELECT * FROM items a, items b, items c")
    assert result.verdict == "too_many_rows" and result.rows is None
    exactly = SQLiteSandbox(SandboxLimits(max_rows=64)).run(database, "SELECT * FROM items a, items b, items c")
    assert exactly.ok and len(exactly.rows) == 64


def test_a_megabyte_of_sql_is_refused_by_either_line(database):
    sql = "SELECT " + " + ".join(["1"] * 350_000)  # > 1 MB
    assert len(sql) > 1_000_000
    assert SQLiteSandbox(LIMITS).run(database, sql).verdict == "refused"
    connection = open_read_only(database, LIMITS)
    with pytest.raises(sqlite3.DataError, match="too large|too long|too big"):  # SQLITE_LIMIT_SQL_LENGTH
        connection.execute(sql)
    connection.close()


def test_a_gigabyte_value_is_refused_not_built(database):
    result = SQLiteSandbox(LIMITS).run(database, "SELECT length(zeroblob(1000000000))")
    assert result.verdict == "refused" and "too big" in result.message


def test_verdicts_of_bad_sql(database):
    sandbox = SQLiteSandbox(LIMITS)
    assert sandbox.run(database, "SELEC name FROM items").verdict == "syntax_error"
    assert sandbox.run(database, "SELECT nosuch FROM items").verdict == "runtime_error"
    assert sandbox.run(database, "SELECT * FROM nosuch").verdict == "runtime_error"
    assert sandbox.run(database, "").verdict == "syntax_error"


def test_reads_return_rows_and_columns(database):
    sql = "WITH t AS (SELECT name, price FROM items) SELECT * FROM t ORDER BY name"
    result = SQLiteSandbox(LIMITS).run(database, sql)
    assert result.ok and result.columns == ("name", "price")
    assert result.rows == (("cap", 0.5), ("ink", None), ("pad", 4.0), ("pen", 1.5))


def test_a_missing_database_is_a_data_error(tmp_path):
    from deepretrieval.errors import DataError

    with pytest.raises(DataError, match="no such database file"):
        SQLiteSandbox(LIMITS).run(tmp_path / "none.sqlite", "SELECT 1")
    assert not (tmp_path / "none.sqlite").exists()  # mode=ro created nothing


def test_gold_results_are_computed_once(database, monkeypatch):
    import deepretrieval.search.sqlite_sandbox as module

    sandbox = SQLiteSandbox(LIMITS)
    calls = []
    real = module.run_query
    monkeypatch.setattr(module, "run_query", lambda *a: calls.append(a[1]) or real(*a))
    first = sandbox.gold(database, "SELECT name FROM items", source="dev.json", record="3")
    again = sandbox.gold(database, "SELECT name FROM items", source="dev.json", record="3")
    assert first == again and len(calls) == 1


def test_gold_results_on_disk_are_read_by_another_sandbox_and_refreshed_by_a_changed_database(
    database, tmp_path, monkeypatch
):
    import deepretrieval.search.sqlite_sandbox as module

    calls = []
    real = module.run_query
    monkeypatch.setattr(module, "run_query", lambda *a: calls.append(a[1]) or real(*a))
    cache = tmp_path / "gold.sqlite"
    sql = "SELECT name, price, x'00ff' FROM items ORDER BY id"
    first = SQLiteSandbox(LIMITS, gold_cache=cache).gold(database, sql, source="dev.json", record="1")
    again = SQLiteSandbox(LIMITS, gold_cache=cache).gold(database, sql, source="dev.json", record="1")
    assert again.rows == first.rows and again.columns == first.columns and len(calls) == 1
    assert again.rows[1] == ("ink", None, b"\x00\xff")  # NULL and bytes come back as they were
    connection = sqlite3.connect(database)
    connection.execute("UPDATE items SET price = 9 WHERE name = 'ink'")
    connection.commit()
    connection.close()
    changed = SQLiteSandbox(LIMITS, gold_cache=cache).gold(database, sql, source="dev.json", record="1")
    assert changed.rows[1] == ("ink", 9.0, b"\x00\xff") and len(calls) == 2


def test_a_gold_query_that_fails_names_the_file_and_record(database):
    from deepretrieval.errors import DataError

    with pytest.raises(DataError) as caught:
        SQLiteSandbox(LIMITS).gold(database, "SELECT nosuch FROM items", source="data/dev.json", record="12")
    message = str(caught.value)
    assert message.startswith("data/dev.json: record 12:") and "runtime_error" in message and "\n" not in message


@pytest.mark.parametrize(
    ("sql", "verdict"),
    [
        ("SELECT 1", None),
        ("WITH a AS (SELECT 1) SELECT * FROM a", None),
        ("SELECT 1 UNION SELECT 2", None),
        ("SELECT 1; SELECT 2", "refused"),
        ("DELETE FROM t", "refused"),
        ("PRAGMA query_only = 0", "refused"),
        ("SELEC 1", "syntax_error"),
    ],
)
def test_sqlglot_reads_one_select_only(sql, verdict):
    result = check_read_only(sql)
    assert (result.verdict if result else None) == verdict


@pytest.mark.parametrize(
    ("sql", "ordered"),
    [
        ("SELECT a FROM t ORDER BY a", True),
        ("SELECT a FROM t", False),
        ("SELECT a FROM (SELECT a FROM t ORDER BY a)", False),  # only the outermost query's order counts
        ("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1", True),
        ("SELECT a FROM t ORDER BY a LIMIT 3", True),
    ],
)
def test_order_by_of_the_outermost_query(sql, ordered):
    assert has_order_by(sql) is ordered
