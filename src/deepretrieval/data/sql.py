"""Text-to-SQL data: Spider- and BIRD-format folders -> Collection (no documents; one Example per question).

Spider: ``train_spider.json`` (+ ``train_others.json``), ``dev.json`` (and ``test.json`` where present), each a
list of ``{"db_id", "question", "query"}``; databases at ``database/<db_id>/<db_id>.sqlite`` (``test_database/``
for the test split where present); ``tables.json`` optional (when present it lists the known db_ids).
BIRD: ``train.json`` / ``dev.json`` (at the top or in ``train/`` and ``dev/``), each a list of ``{"db_id",
"question", "evidence", "SQL"}``; databases at ``<split>_databases/<db_id>/<db_id>.sqlite`` beside the file.

Each question becomes an :class:`Example`: ``question``, ``targets`` ``{gold SQL: 1}``, ``meta``: ``db_id``,
``db_path``, ``sql`` (the gold), ``evidence`` (BIRD's external knowledge, '' when none), ``schema`` (the
database's own CREATE statements), ``source`` and ``record`` (the data file and the record's index: what an
error about it names). Malformed input (a missing database file, an unknown db_id, a file that is no SQLite
database, a record without its fields) is a one-line :class:`DataError` naming the file and the record; a gold
query that does not run is found when it is first run (``search.sqlite_sandbox.SQLiteSandbox.gold``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ..errors import DataError
from ..types import Collection, Example

SPIDER_FILES = {"train": ("train_spider.json", "train_others.json"), "dev": ("dev.json",), "test": ("test.json",)}
BIRD_SPLITS = ("train", "dev", "test")


def database_schema(path: Path) -> str:
    """The database's own CREATE statements (tables, then indexes and views), one per paragraph; raises
    ``sqlite3.DatabaseError`` for a file that is no SQLite database."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
            "ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid"
        ).fetchall()
    finally:
        connection.close()
    return "\n\n".join(str(sql).strip() + ";" for (sql,) in rows)


class SchemaReader:
    """Each database's schema, read once; errors name the data file and the record that first used it."""

    def __init__(self) -> None:
        self._schemas: dict[Path, str] = {}

    def __call__(self, path: Path, source: Path, record: int) -> str:
        if path not in self._schemas:
            if not path.is_file():
                raise DataError(source, f"record {record}: no database file {path}")
            try:
                self._schemas[path] = database_schema(path)
            except sqlite3.DatabaseError as exc:
                raise DataError(source, f"record {record}: {path} is no SQLite database ({exc})") from None
        return self._schemas[path]


def sql_example(
    *,
    id: str,
    question: str,
    sql: str,
    db_id: str,
    db_path: Path,
    schema: str,
    source: Path | str,
    record: int,
    evidence: str = "",
) -> Example:
    return Example(
        id=id,
        question=question,
        targets={sql: 1},
        meta={
            "db_id": db_id,
            "db_path": str(db_path),
            "sql": sql,
            "evidence": evidence,
            "schema": schema,
            "source": str(source),
            "record": record,
        },
    )


def read_records(path: Path, keys: Iterable[str]) -> list[dict]:
    """The records of a Spider/BIRD JSON file, each checked for ``keys`` (non-empty text)."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"unreadable ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(records, list):
        raise DataError(path, f"a list of question records expected, got {type(records).__name__}")
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(path, f"record {number}: an object expected, got {type(record).__name__}")
        for key in keys:
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise DataError(path, f"record {number}: no {key!r} text")
    return records


def is_spider_folder(path: Path) -> bool:
    names = [name for files in SPIDER_FILES.values() for name in files]
    return path.is_dir() and (path / "database").is_dir() and any((path / name).is_file() for name in names)


def is_bird_folder(path: Path) -> bool:
    return path.is_dir() and bool(_bird_files(path))


def _bird_files(path: Path) -> dict[str, tuple[Path, Path]]:
    """split -> (questions file, databases folder) of a BIRD folder."""
    found = {}
    for split in BIRD_SPLITS:
        for folder in (path, path / split):
            file, databases = folder / f"{split}.json", folder / f"{split}_databases"
            if file.is_file() and databases.is_dir():
                found[split] = (file, databases)
                break
    return found


def _known_db_ids(path: Path) -> set[str] | None:
    tables = path / "tables.json"
    if not tables.is_file():
        return None
    try:
        entries = json.loads(tables.read_text(encoding="utf-8"))
        return {str(e["db_id"]) for e in entries}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(tables, f"unreadable ({exc})") from None


def load_spider(path: Path) -> Collection:
    """A Spider-format folder (see the module docstring); splits train, dev and test where present."""
    known = _known_db_ids(path)
    schemas = SchemaReader()
    examples: list[Example] = []
    splits: dict[str, list[str]] = {}
    for split, names in SPIDER_FILES.items():
        databases = path / ("test_database" if split == "test" and (path / "test_database").is_dir() else "database")
        for name in names:
            file = path / name
            if not file.is_file():
                continue
            for number, record in enumerate(read_records(file, ("db_id", "question", "query"))):
                db_id = record["db_id"]
                if known is not None and db_id not in known and split != "test":
                    raise DataError(file, f"record {number}: unknown db_id {db_id!r} (not in tables.json)")
                db_path = databases / db_id / f"{db_id}.sqlite"
                if not (databases / db_id).is_dir():
                    raise DataError(file, f"record {number}: unknown db_id {db_id!r} (no folder {databases / db_id})")
                example = sql_example(
                    id=f"{file.stem}-{number}",
                    question=record["question"].strip(),
                    sql=record["query"].strip(),
                    db_id=db_id,
                    db_path=db_path,
                    schema=schemas(db_path, file, number),
                    source=file,
                    record=number,
                )
                examples.append(example)
                splits.setdefault(split, []).append(example.id)
    if not examples:
        raise DataError(path, "a Spider folder without questions (train_spider.json, dev.json)")
    return Collection(name=path.name, documents=[], examples=examples, splits=splits)


def load_bird(path: Path) -> Collection:
    """A BIRD-format folder (see the module docstring); ``evidence`` shown in the prompt where present."""
    schemas = SchemaReader()
    examples: list[Example] = []
    splits: dict[str, list[str]] = {}
    for split, (file, databases) in _bird_files(path).items():
        for number, record in enumerate(read_records(file, ("db_id", "question", "SQL"))):
            db_id = record["db_id"]
            if not (databases / db_id).is_dir():
                raise DataError(file, f"record {number}: unknown db_id {db_id!r} (no folder {databases / db_id})")
            db_path = databases / db_id / f"{db_id}.sqlite"
            evidence = record.get("evidence")
            example = sql_example(
                id=f"{split}-{record.get('question_id', number)}",
                question=record["question"].strip(),
                sql=record["SQL"].strip(),
                db_id=db_id,
                db_path=db_path,
                schema=schemas(db_path, file, number),
                source=file,
                record=number,
                evidence=evidence.strip() if isinstance(evidence, str) else "",
            )
            examples.append(example)
            splits.setdefault(split, []).append(example.id)
    if not examples:
        raise DataError(path, "a BIRD folder without questions (train.json, dev.json)")
    return Collection(name=path.name, documents=[], examples=examples, splits=splits)
