"""Classic SMART-format test collections (Cranfield, MED, CACM, CISI, ... as in the Glasgow IR group's set).

Records start with ``.I <id>``; fields follow as ``.T`` title, ``.A`` authors, ``.B`` bibliography,
``.W`` text, each marker on its own line. Files use CRLF line endings. A folder is recognised by one
document file (``*.all``, ``*.all.<n>``), one query file (``*.qry``, CACM's ``query.text``) and one
judgment file (``*.rel``, ``cranqrel``, CACM's ``qrels.text``).

Judgment layouts, detected per file from all its lines (a line with another column count than the
rest of the file is an error; so is a layout not listed here, and a collection with no relevant pair):

- ``cranqrel`` (by name): ``query doc code``, Cleverdon codes 1 the most relevant to 4 the least, and
  -1 "of no interest": gain = 5 − code for 1..4, and -1 is kept as judged non-relevant (0).
- 3 columns, ``query doc grade`` (``MED.REL``: ``query doc 1``): plain integer grades.
- 4 columns whose last two are zero on every line, ``query doc 0 0.000000`` (CACM ``qrels.text``,
  CISI/ADI ``.REL``): every listed pair is relevant (grade 1); the last two columns are unused.
- 4 columns whose second is ``0`` or ``Q0`` on every line: TREC ``query 0 doc grade``.
- 2 columns, ``query doc``: every listed pair is relevant (grade 1).

Other quirks handled: Cranfield's query file numbers its queries with gaps (``.I 001, 002, 004 …``)
while ``cranqrel`` numbers them 1..225 in file order, so queries are renumbered by file order (original
id kept in ``meta['source_id']``); ids are compared without leading zeros (CACM's ``01``).

What is refused rather than guessed (a DataError naming file and line): bytes that are not UTF-8 (a
byte-order mark is skipped), a carriage return inside a line (classic Mac OS's lone-CR line endings), text
before the first ``.I`` or before a record's first field marker, a query id given twice (it would shift
every later query onto another's judgments), a document id given twice with other content, a fractional or
non-finite grade. Counted in ``Collection.warnings``: a document repeated identically (first kept), a marker
with text on its line (``.T Title``: the field's first line).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from ..errors import DataError
from ..types import Collection, Document, Example
from ._judgments import Judgment, attach, integral_grade, require_indexable, require_relevant, unique
from .beir import read_lines
from .splits import split_ids

# A marker line: ".W", or ".I 12" / ".T Title" (a letter then whitespace: ".NET is" is text, not a marker).
FIELD = re.compile(r"^\.([A-Z])(?:\s+(.*))?$")
CLEVERDON = {1: 4, 2: 3, 3: 2, 4: 1, -1: 0}
DOCS = re.compile(r"\.all(\.\d+)?$", re.IGNORECASE)
QUERIES = re.compile(r"(\.qry|^query\.text)$", re.IGNORECASE)
# cranqrel, CACM's qrels.text, *.rel; not cranqrel.readme.
RELS = re.compile(r"(\.rel|qrels?(\.te?xt)?)$", re.IGNORECASE)

Layout = Literal["cleverdon", "grades", "pairs", "trec"]
Row = tuple[int, list[str]]  # line number, whitespace-separated columns
Record = tuple[str, dict[str, str], int]  # id, {field letter: text}, line of the .I marker
OpenRecord = tuple[str, dict[str, list[str]], int]  # a record being read: its fields' lines


def find_files(folder: Path) -> tuple[Path, Path, Path] | None:
    """(documents, queries, judgments) files of a SMART folder, or None if it is not one."""
    files = [p for p in folder.iterdir() if p.is_file()]
    docs = [p for p in files if DOCS.search(p.name)]
    queries = [p for p in files if QUERIES.search(p.name)]
    rels = [p for p in files if RELS.search(p.name)]
    if len(docs) == 1 and len(queries) == 1 and len(rels) == 1:
        return docs[0], queries[0], rels[0]
    return None


def records(path: Path, warnings: list[str]) -> list[Record]:
    """The file's records as (id, {field letter: text}, line number of the .I marker).

    Text before the first ``.I``, or inside a record before its first field marker, is an error: it would
    otherwise be dropped. A marker with text on its own line (``.T Title``) starts the field with that
    text, counted in a warning (the Glasgow files put every marker but ``.I`` on a line of its own).
    """
    found: list[OpenRecord] = []
    field: str | None = None
    inline: list[tuple[str, int]] = []
    for number, line in _lines(path):
        match = FIELD.match(line)
        if match is None:
            if line.strip():
                _text_line(path, found, field, number).append(line.strip())
            continue
        letter, text = match.group(1), (match.group(2) or "").strip()
        if letter == "I":
            if not text:
                raise DataError(path, "record marker .I without an id", line=number)
            found.append((_norm(text), {}, number))
            field = None
            continue
        if not found:
            raise DataError(path, f"field .{letter} before any .I record", line=number)
        field = letter
        lines = found[-1][1].setdefault(field, [])
        if text:
            inline.append((letter, number))
            lines.append(text)
    if inline:
        letter, number = inline[0]
        warnings.append(
            f"{path.name}: {len(inline)} field markers have text on the same line (first: '.{letter}' at line "
            f"{number}); read as the field's first line"
        )
    return [(record_id, _join(fields), line) for record_id, fields, line in found]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """:func:`read_lines`, refusing a carriage return inside a line.

    Lines end in LF or CRLF. A file with classic Mac OS line endings (CR alone) reads as one line: its first
    record would swallow the file, and the error would surface elsewhere, naming another file or none.
    """
    for number, line in read_lines(path):
        if "\r" in line:
            raise DataError(
                path, "a carriage return (CR) inside a line: line endings must be LF or CRLF, not CR alone", line=number
            )
        yield number, line


def _text_line(path: Path, found: list[OpenRecord], field: str | None, line: int) -> list[str]:
    """Where a line of text goes: the current field of the current record, or an error if there is none."""
    if not found:
        raise DataError(path, "text before the first .I record", line=line)
    if field is None:
        raise DataError(path, f"text in record .I {found[-1][0]} before any field marker (.T, .W, ...)", line=line)
    return found[-1][1][field]


def _join(fields: dict[str, list[str]]) -> dict[str, str]:
    return {k: " ".join(x for x in v if x) for k, v in fields.items()}


def load_classic(folder: Path, *, seed: int = 0, fractions=(0.6, 0.1, 0.3)) -> Collection:
    found = find_files(folder)
    if found is None:
        raise DataError(folder, "not a SMART collection folder (need one *.ALL, *.QRY/query.text, *.REL/qrels.text)")
    doc_path, query_path, rel_path = found
    warnings: list[str] = []
    documents = _documents(doc_path, warnings)
    questions = _questions(query_path, warnings)
    layout, judgments = read_judgments(rel_path)
    targets = attach(judgments, {q for q, _, _ in questions}, {d.id for d in documents}, rel_path, warnings)
    require_relevant(targets, rel_path, f"read as the {layout!r} layout")
    examples = [Example(q, text, targets.get(q, {}), {"source_id": sid}) for q, text, sid in questions]
    unjudged = sum(1 for e in examples if not e.relevant)
    if unjudged:
        warnings.append(f"{rel_path.name}: {unjudged} queries have no relevant document (they score 0)")
    splits = split_ids([e.id for e in examples], seed, fractions)
    return Collection(folder.name.lower(), documents, examples, splits, warnings)


def _documents(path: Path, warnings: list[str]) -> list[Document]:
    parsed = ((i, (f.get("T", ""), f.get("W", "")), line) for i, f, line in records(path, warnings))
    kept = unique(parsed, path, "document", warnings)
    if not kept:
        raise DataError(path, "no .I records")
    documents = [Document(doc_id, title, text) for doc_id, ((title, text), _) in kept.items()]
    require_indexable(documents, path)
    return documents


def _questions(path: Path, warnings: list[str]) -> list[tuple[str, str, str]]:
    """(id by position, text, id in the file): judgment files number queries by position (see above)."""
    questions = []
    first: dict[str, int] = {}
    for position, (source_id, fields, line) in enumerate(records(path, warnings), start=1):
        if source_id in first:
            # Even an identical repeat shifts every later query onto another query's judgments.
            raise DataError(
                path,
                f"query .I {source_id} repeats the one at line {first[source_id]} (queries count by position)",
                line=line,
            )
        first[source_id] = line
        text = fields.get("W", "").strip()
        if not text:
            raise DataError(path, f"query {source_id} has no .W text", line=line)
        questions.append((str(position), text, source_id))
    return questions


def read_judgments(path: Path) -> tuple[Layout, list[Judgment]]:
    """The file's layout and its judgments as (query, doc, grade, file name, line)."""
    rows = _rows(path)
    layout = _layout(path, rows, _width(path, rows))
    return layout, [(_norm(q), _norm(d), grade, path.name, n) for n, q, d, grade in _graded(path, rows, layout)]


def _rows(path: Path) -> list[Row]:
    rows = [(number, parts) for number, line in _lines(path) if (parts := line.split())]
    if not rows:
        raise DataError(path, "no judgments")
    return rows


def _width(path: Path, rows: list[Row]) -> int:
    """The file's column count; the first line that departs from the most common one is an error."""
    width = Counter(len(parts) for _, parts in rows).most_common(1)[0][0]
    for number, parts in rows:
        if len(parts) != width:
            raise DataError(
                path, f"{len(parts)} columns where the rest of the file has {width} (one layout per file)", line=number
            )
    return width


def _layout(path: Path, rows: list[Row], width: int) -> Layout:
    if path.name.lower().startswith("cranqrel"):
        if width != 3:
            raise DataError(path, f"expected 'query doc code' (3 columns), got {width} columns")
        return "cleverdon"
    if width == 2:
        return "pairs"
    if width == 3:
        return "grades"
    if width == 4 and all(_is_zero(parts[2]) and _is_zero(parts[3]) for _, parts in rows):
        return "pairs"
    if width == 4 and all(parts[1] in ("0", "Q0") for _, parts in rows):
        return "trec"
    if width == 4:
        # Guessing which column is the grade is how every query ended up with zero relevant documents.
        raise DataError(path, "4 columns, but neither 'query doc 0 0' on every line nor TREC 'query 0 doc grade'")
    raise DataError(path, f"{width} columns: not a known judgment layout ('query doc [grade]')")


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0
    except ValueError:
        return False


def _graded(path: Path, rows: list[Row], layout: Layout) -> Iterator[tuple[int, str, str, int]]:
    """Yield (line, query, doc, grade)."""
    for number, parts in rows:
        if layout == "pairs":
            yield number, parts[0], parts[1], 1
        elif layout == "trec":
            yield number, parts[0], parts[2], _integer(path, parts[3], number)
        elif layout == "grades":
            yield number, parts[0], parts[1], _integer(path, parts[2], number)
        else:
            code = _integer(path, parts[2], number)
            if code not in CLEVERDON:
                raise DataError(path, f"Cleverdon code {code} is not one of -1, 1, 2, 3, 4", line=number)
            yield number, parts[0], parts[1], CLEVERDON[code]


def _integer(path: Path, text: str, line: int) -> int:
    """``2`` or ``2.0``; ``0.5``, ``nan`` and ``inf`` are errors (no rounding)."""
    try:
        value = float(text)
    except ValueError:
        raise DataError(path, f"grade {text!r} is not an integer", line=line) from None
    return integral_grade(value, path, line)


def _norm(record_id: str) -> str:
    """'004' and '4' name the same record."""
    return record_id.lstrip("0") or "0" if record_id.isdigit() else record_id
