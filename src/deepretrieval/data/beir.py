"""BEIR folders: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataError
from ..types import Collection, Document, Example
from ._judgments import attach


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object); a bad line is a DataError naming file and line."""
    if not path.is_file():
        raise DataError(path, "no such file")
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, f"invalid JSON ({exc.msg})", line=number) from None
            if not isinstance(record, dict):
                raise DataError(path, "expected a JSON object", line=number)
            yield number, record


def field(record: dict, name: str, path: Path, line: int, *, alt: str | None = None) -> str:
    value = record.get(name, record.get(alt) if alt else None)
    if value is None:
        raise DataError(path, f"missing field {name!r}", line=line)
    return str(value)


def read_corpus(path: Path) -> list[Document]:
    documents = [
        Document(field(r, "_id", path, n, alt="id"), str(r.get("title") or ""), str(r.get("text") or ""))
        for n, r in read_jsonl(path)
    ]
    if not documents:
        raise DataError(path, "the corpus is empty")
    seen: set[str] = set()
    for d in documents:
        if d.id in seen:
            raise DataError(path, f"duplicate document id {d.id!r}")
        seen.add(d.id)
    return documents


def read_qrels(path: Path) -> Iterator[tuple[str, str, int, str, int]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
            if not parts or not line.strip():
                continue
            if number == 1 and parts[0] in ("query-id", "query_id", "qid"):
                continue
            if len(parts) == 4:  # TREC format: qid iteration doc grade
                parts = [parts[0], parts[2], parts[3]]
            if len(parts) != 3:
                raise DataError(path, f"expected 'query-id<TAB>corpus-id<TAB>score', got {line.strip()!r}", line=number)
            try:
                grade = int(float(parts[2]))
            except ValueError:
                raise DataError(path, f"score {parts[2]!r} is not a number", line=number) from None
            yield parts[0], parts[1], grade, f"qrels/{path.name}", number


def load_beir(folder: Path) -> Collection:
    documents = read_corpus(folder / "corpus.jsonl")
    queries_path = folder / "queries.jsonl"
    questions = {
        field(r, "_id", queries_path, n, alt="id"): field(r, "text", queries_path, n)
        for n, r in read_jsonl(queries_path)
    }
    qrels_dir = folder / "qrels"
    files = sorted(qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
    if not files:
        raise DataError(qrels_dir, "no qrels/<split>.tsv files")
    warnings: list[str] = []
    doc_ids = {d.id for d in documents}
    targets: dict[str, dict[str, int]] = {}
    splits: dict[str, list[str]] = {}
    for path in files:
        split_targets = attach(read_qrels(path), set(questions), doc_ids, path, warnings)
        splits[path.stem] = sorted(split_targets)
        for qid, judged in split_targets.items():
            targets.setdefault(qid, {}).update(judged)
    examples = [Example(q, questions[q], targets[q]) for q in questions if q in targets]
    unjudged = sum(1 for e in examples if not e.relevant)
    if unjudged:
        warnings.append(f"{qrels_dir}: {unjudged} queries have no relevant document (they score 0)")
    return Collection(folder.name, documents, examples, splits, warnings)
