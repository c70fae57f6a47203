"""Users' own data: a JSONL of ``{"id", "question", "targets", "meta"?, "split"?}`` plus a BEIR corpus.

``targets`` is ``{doc_id: grade}`` or a list of doc ids (grade 1).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..types import Collection, Example
from ._judgments import attach
from .beir import field, read_corpus, read_jsonl
from .splits import split_ids


def load_jsonl(path: Path, corpus: Path | None = None, *, seed: int = 0, fractions=(0.6, 0.1, 0.3)) -> Collection:
    corpus = corpus or path.parent / "corpus.jsonl"
    if not corpus.is_file():
        raise DataError(corpus, "no corpus for these examples (put corpus.jsonl beside them or pass --corpus)")
    documents = read_corpus(corpus)
    rows, judgments, declared = [], [], {}
    for number, record in read_jsonl(path):
        qid = field(record, "id", path, number)
        question = field(record, "question", path, number)
        raw = record.get("targets")
        if isinstance(raw, list):
            raw = {str(d): 1 for d in raw}
        if not isinstance(raw, dict):
            raise DataError(path, "field 'targets' must be an object {doc: grade} or a list of doc ids", line=number)
        for doc, grade in raw.items():
            if not isinstance(grade, int | float) or isinstance(grade, bool):
                raise DataError(path, f"grade of {doc!r} must be a number", line=number)
            judgments.append((qid, str(doc), int(grade), path.name, number))
        meta = record.get("meta") or {}
        if not isinstance(meta, dict):
            raise DataError(path, "field 'meta' must be an object", line=number)
        if "split" in record:
            declared[qid] = str(record["split"])
        rows.append((qid, question, meta))
    if not rows:
        raise DataError(path, "no examples")
    warnings: list[str] = []
    targets = attach(judgments, {q for q, _, _ in rows}, {d.id for d in documents}, path, warnings)
    examples = [Example(q, text, targets.get(q, {}), meta) for q, text, meta in rows]
    if declared:
        if len(declared) != len(rows):
            raise DataError(path, "either every example has a 'split' or none does")
        splits: dict[str, list[str]] = {}
        for qid, name in declared.items():
            splits.setdefault(name, []).append(qid)
    else:
        splits = split_ids([e.id for e in examples], seed, fractions)
    return Collection(path.stem, documents, examples, splits, warnings)
