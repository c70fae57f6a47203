"""Users' own data: a JSONL of ``{"id", "question", "targets", "meta"?, "split"?}`` plus a BEIR corpus.

``targets`` is ``{doc_id: grade}`` or a list of doc ids (grade 1). Grades are whole numbers (``1`` or
``1.0``); an example id given twice must repeat the same example (it is then counted and kept once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DataError
from ..types import Collection, Example
from ._judgments import Judgment, attach, integral_grade, unique
from .beir import identifier, question, read_corpus, read_jsonl, record_id
from .splits import split_ids

Pairs = tuple[tuple[str, int], ...]  # (doc id, grade) as written, repeats included (attach counts them)


def load_jsonl(path: Path, corpus: Path | None = None, *, seed: int = 0, fractions=(0.6, 0.1, 0.3)) -> Collection:
    corpus = corpus or path.parent / "corpus.jsonl"
    if not corpus.is_file():
        raise DataError(corpus, "no corpus for these examples (put corpus.jsonl beside them or pass --corpus)")
    warnings: list[str] = []
    documents = read_corpus(corpus, warnings)
    parsed = ((record_id(r, "id", path, n), _example(r, path, n), n) for n, r in read_jsonl(path))
    rows = unique(parsed, path, "example", warnings)
    if not rows:
        raise DataError(path, "no examples")
    judgments: list[Judgment] = [
        (qid, doc, grade, path.name, line) for qid, ((_, pairs, _, _), line) in rows.items() for doc, grade in pairs
    ]
    targets = attach(judgments, set(rows), {d.id for d in documents}, path, warnings)
    examples = [Example(q, text, targets.get(q, {}), meta) for q, ((text, _, meta, _), _) in rows.items()]
    declared = {qid: split for qid, ((_, _, _, split), _) in rows.items() if split is not None}
    if declared:
        if len(declared) != len(rows):
            raise DataError(path, "either every example has a 'split' or none does")
        splits: dict[str, list[str]] = {}
        for qid, name in declared.items():
            splits.setdefault(name, []).append(qid)
    else:
        splits = split_ids([e.id for e in examples], seed, fractions)
    return Collection(path.stem, documents, examples, splits, warnings)


def _example(record: dict, path: Path, line: int) -> tuple[str, Pairs, dict[str, Any], str | None]:
    """(question, targets, meta, split): what a repeated id is compared on."""
    text = question(record, "question", path, line)
    meta = record.get("meta") or {}
    if not isinstance(meta, dict):
        raise DataError(path, "field 'meta' must be an object", line=line)
    split = identifier(record["split"], "field 'split'", path, line) if "split" in record else None
    return text, _targets(record.get("targets"), path, line), meta, split


def _targets(raw: object, path: Path, line: int) -> Pairs:
    if isinstance(raw, list):
        return tuple((identifier(d, "a target document id", path, line), 1) for d in raw)
    if not isinstance(raw, dict):
        raise DataError(path, "field 'targets' must be an object {doc: grade} or a list of doc ids", line=line)
    pairs = []
    for doc, grade in raw.items():
        if not isinstance(grade, int | float) or isinstance(grade, bool):
            raise DataError(path, f"grade of {doc!r} must be a number", line=line)
        pairs.append((identifier(doc, "a target document id", path, line), integral_grade(grade, path, line)))
    return tuple(pairs)
