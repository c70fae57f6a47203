"""Classic SMART-format test collections (Cranfield, MED, ... as in the Glasgow IR group's set).

Records start with ``.I <id>``; fields follow as ``.T`` title, ``.A`` authors, ``.B`` bibliography,
``.W`` text, each marker on its own line. Files use CRLF line endings. Quirks handled:

- Cranfield's query file numbers its queries with gaps (``.I 001, 002, 004 …``) while ``cranqrel``
  numbers them 1..225 in file order: queries are renumbered by file order (original id kept in
  ``meta['source_id']``).
- ``cranqrel`` grades are Cleverdon codes, 1 the most relevant to 4 the least, and -1 "of no interest":
  gain = 5 − code for 1..4, and -1 is kept as judged non-relevant (0). Other rel files (``MED.REL``:
  ``query doc 1``) carry plain grades.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataError
from ..types import Collection, Document, Example
from ._judgments import attach
from .splits import split_ids

FIELD = re.compile(r"^\.([A-Z])\s*(.*)$")
CLEVERDON = {1: 4, 2: 3, 3: 2, 4: 1, -1: 0}


def find_files(folder: Path) -> tuple[Path, Path, Path] | None:
    """(documents, queries, judgments) files of a SMART folder, or None if it is not one."""
    files = [p for p in folder.iterdir() if p.is_file()]
    docs = [p for p in files if re.search(r"\.all(\.\d+)?$", p.name, re.IGNORECASE)]
    queries = [p for p in files if re.search(r"\.qry$", p.name, re.IGNORECASE)]
    rels = [p for p in files if re.search(r"(\.rel$|qrel$)", p.name, re.IGNORECASE)]
    if len(docs) == 1 and len(queries) == 1 and len(rels) == 1:
        return docs[0], queries[0], rels[0]
    return None


def records(path: Path) -> Iterator[tuple[str, dict[str, str], int]]:
    """Yield (id, {field letter: text}, line number of the .I marker)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror})") from None
    current: tuple[str, dict[str, list[str]], int] | None = None
    field: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        match = FIELD.match(line)
        if match and match.group(1) == "I":
            if current:
                yield current[0], _join(current[1]), current[2]
            record_id = _norm(match.group(2).strip())
            if not record_id:
                raise DataError(path, "record marker .I without an id", line=number)
            current, field = (record_id, {}, number), None
        elif match and not match.group(2).strip():
            if current is None:
                raise DataError(path, f"field .{match.group(1)} before any .I record", line=number)
            field = match.group(1)
            current[1].setdefault(field, [])
        elif current is not None and field is not None:
            current[1][field].append(line.strip())
    if current:
        yield current[0], _join(current[1]), current[2]


def _join(fields: dict[str, list[str]]) -> dict[str, str]:
    return {k: " ".join(x for x in v if x) for k, v in fields.items()}


def load_classic(folder: Path, *, seed: int = 0, fractions=(0.6, 0.1, 0.3)) -> Collection:
    found = find_files(folder)
    if found is None:
        raise DataError(folder, "not a SMART collection folder (need one *.ALL, one *.QRY and one *.REL/qrel file)")
    doc_path, query_path, rel_path = found
    documents = [Document(i, f.get("T", ""), f.get("W", "")) for i, f, _ in records(doc_path)]
    if not documents:
        raise DataError(doc_path, "no .I records")
    questions = []
    for position, (source_id, fields, line) in enumerate(records(query_path), start=1):
        text = fields.get("W", "").strip()
        if not text:
            raise DataError(query_path, f"query {source_id} has no .W text", line=line)
        questions.append((str(position), text, source_id))
    warnings: list[str] = []
    cleverdon = rel_path.name.lower().startswith("cranqrel")
    targets = attach(
        _judgments(rel_path, cleverdon),
        {q for q, _, _ in questions},
        {d.id for d in documents},
        rel_path,
        warnings,
    )
    examples = [Example(q, text, targets.get(q, {}), {"source_id": sid}) for q, text, sid in questions]
    unjudged = sum(1 for e in examples if not e.relevant)
    if unjudged:
        warnings.append(f"{rel_path.name}: {unjudged} queries have no relevant document (they score 0)")
    splits = split_ids([e.id for e in examples], seed, fractions)
    return Collection(folder.name.lower(), documents, examples, splits, warnings)


def _judgments(path: Path, cleverdon: bool) -> Iterator[tuple[str, str, int, str, int]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise DataError(path, f"expected 'query doc [grade]', got {line.strip()!r}", line=number)
        try:
            code = int(parts[2]) if len(parts) > 2 else 1
        except ValueError:
            raise DataError(path, f"grade {parts[2]!r} is not an integer", line=number) from None
        if cleverdon:
            if code not in CLEVERDON:
                raise DataError(path, f"Cleverdon code {code} is not one of -1, 1, 2, 3, 4", line=number)
            grade = CLEVERDON[code]
        else:
            grade = code
        yield _norm(parts[0]), _norm(parts[1]), grade, path.name, number


def _norm(record_id: str) -> str:
    """'004' and '4' name the same record."""
    return record_id.lstrip("0") or "0" if record_id.isdigit() else record_id
