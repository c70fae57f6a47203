"""BEIR folders: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

Text files are read as UTF-8; a leading byte-order mark (as Windows editors write) is skipped on every
input. Any other byte that is not UTF-8 is an error naming the line, never a replacement character.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..types import Collection, Document, Example
from ._judgments import Seen, attach, integral_grade, require_indexable, unique

BOM = b"\xef\xbb\xbf"
# A \uD800-\uDFFF escape: only then can a decoded string hold a lone surrogate (which cannot be encoded).
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused(ValueError):
    """Valid to Python's json module, but not data: NaN / Infinity, a key given twice."""


def _constant(name: str) -> float:
    raise _Refused(f"{name} is not a JSON number (write a finite number, or null)")


def _object(pairs: list[tuple[str, object]]) -> dict:
    record = dict(pairs)
    if len(record) != len(pairs):  # json.loads would silently keep the last value
        key = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise _Refused(f"key {key!r} appears twice in one object")
    return record


# One decoder for every line: the hooks cost nothing measurable with the C scanner (1.8 vs 1.7 µs a line).
DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text without its line ending) of a UTF-8 file, skipping a byte-order mark."""
    if not path.is_file():
        raise DataError(path, "no such file")
    try:
        with path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                if number == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM) :]
                yield number, _decode(raw, path, number).rstrip("\r\n")
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror})") from None


def _decode(raw: bytes, path: Path, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            path,
            f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} (save the file as UTF-8)",
            line=line,
        ) from None


def decode_json(text: str, path: Path, line: int | None = None) -> Any:
    """One JSON value (:data:`DECODER`'s rules); a DataError naming the file and ``line`` (else the line
    within ``text``) when it is invalid, never a traceback."""
    try:
        return DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON ({exc.msg})", line=exc.lineno if line is None else line) from None
    except ValueError as exc:  # _Refused, or an integer of more than 4300 digits
        raise DataError(path, f"invalid JSON ({exc})", line=line) from None
    except RecursionError:
        raise DataError(path, "invalid JSON (nested too deeply)", line=line) from None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object); a bad line is a DataError naming file and line."""
    for number, line in read_lines(path):
        if not line.strip():
            continue
        record = decode_json(line, path, number)
        if not isinstance(record, dict):
            raise DataError(path, "expected a JSON object", line=number)
        if SURROGATE_ESCAPE.search(line) and (at := surrogate_field(record)) is not None:
            raise DataError(path, surrogate_message(at), line=number)
        yield number, record


def surrogate_message(at: str) -> str:
    at = at if len(at) <= 60 else at[:57] + "..."  # a field nested a thousand deep is not one line's worth
    return f"field {at!r} holds a lone surrogate escape (\\ud800-\\udfff): not Unicode text"


def surrogate_field(value: object) -> str | None:
    """Where a decoded JSON value holds a lone surrogate (``title``, ``meta.notes[2]``; a key's own name
    counts), the first in file order; None if nowhere.

    A loop, not recursion: a value nested as deep as the decoder allows would overflow the stack here.
    """
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        at, item = stack.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                return at
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                here = f"{at}.{key}" if at else key
                stack += [(here, child), (here, key)]  # the key's name first, then its value
        elif isinstance(item, list):
            stack += [(f"{at}[{i}]", child) for i, child in reversed(list(enumerate(item)))]
    return None


def _show(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _key(record: dict, name: str, alt: str | None) -> str:
    return alt if alt is not None and name not in record and alt in record else name


def field(record: dict, name: str, path: Path, line: int, *, alt: str | None = None, required: bool = True) -> str:
    """The string in ``name`` (or ``alt``). Missing or null: an error if ``required``, else ''."""
    key = _key(record, name, alt)
    value = record.get(key)
    if value is None:
        if required:
            raise DataError(path, f"missing field {name!r}", line=line)
        return ""
    if not isinstance(value, str):  # a list or object would be indexed or asked as its repr
        raise DataError(path, f"field {key!r} must be a string, got {_show(value)}", line=line)
    return value


def question(record: dict, name: str, path: Path, line: int) -> str:
    """A query's text: a blank one retrieves nothing and would score 0 without saying why."""
    text = field(record, name, path, line)
    if not text.strip():
        raise DataError(path, f"field {name!r} is blank (a query needs text)", line=line)
    return text


def identifier(value: object, what: str, path: Path, line: int) -> str:
    """An id is a non-blank string or an integer (``7`` and ``"7"`` are one id); anything else is an error."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    raise DataError(path, f"{what} must be a non-empty string or an integer, got {_show(value)}", line=line)


def record_id(record: dict, name: str, path: Path, line: int, *, alt: str | None = None) -> str:
    key = _key(record, name, alt)
    if record.get(key) is None:
        raise DataError(path, f"missing field {name!r}", line=line)
    return identifier(record[key], f"field {key!r}", path, line)


def read_corpus(path: Path, warnings: list[str]) -> list[Document]:
    parsed = (
        (
            record_id(r, "_id", path, n, alt="id"),
            (field(r, "title", path, n, required=False), field(r, "text", path, n, required=False)),
            n,
        )
        for n, r in read_jsonl(path)
    )
    kept = unique(parsed, path, "document", warnings)
    if not kept:
        raise DataError(path, "the corpus is empty")
    documents = [Document(doc_id, title, text) for doc_id, ((title, text), _) in kept.items()]
    require_indexable(documents, path)
    return documents


def read_queries(path: Path, warnings: list[str]) -> dict[str, str]:
    parsed = ((record_id(r, "_id", path, n, alt="id"), question(r, "text", path, n), n) for n, r in read_jsonl(path))
    queries = {qid: text for qid, (text, _) in unique(parsed, path, "query", warnings).items()}
    if not queries:  # else the qrels would be blamed: none of their judgments names a known query
        raise DataError(path, "no queries (the file is empty)")
    return queries


def read_qrels(path: Path) -> Iterator[tuple[str, str, int, str, int]]:
    for number, line in read_lines(path):
        parts = line.split("\t") if "\t" in line else line.split()
        if not parts or not line.strip():
            continue
        if number == 1 and parts[0] in ("query-id", "query_id", "qid"):
            continue
        if len(parts) == 4:  # TREC format: qid iteration doc grade
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise DataError(path, f"expected 'query-id<TAB>corpus-id<TAB>score', got {line.strip()!r}", line=number)
        try:
            score = float(parts[2])
        except ValueError:
            raise DataError(path, f"score {parts[2]!r} is not a number", line=number) from None
        yield parts[0], parts[1], integral_grade(score, path, number, what="score"), f"qrels/{path.name}", number


def load_beir(folder: Path) -> Collection:
    warnings: list[str] = []
    documents = read_corpus(folder / "corpus.jsonl", warnings)
    questions = read_queries(folder / "queries.jsonl", warnings)
    qrels_dir = folder / "qrels"
    files = sorted(qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
    if not files:
        raise DataError(qrels_dir, "no qrels/<split>.tsv files")
    query_ids, doc_ids = set(questions), {d.id for d in documents}
    targets: dict[str, dict[str, int]] = {}
    splits: dict[str, list[str]] = {}
    seen: Seen = {}  # across files: one pair graded differently in two splits is an error too
    for path in files:
        judgments = list(read_qrels(path))
        if not judgments:
            raise DataError(path, "no judgments (the file is empty or only a header): its split would be empty")
        split_targets = attach(judgments, query_ids, doc_ids, path, warnings, seen)
        splits[path.stem] = sorted(split_targets)
        for qid, judged in split_targets.items():
            targets.setdefault(qid, {}).update(judged)
    examples = [Example(q, questions[q], targets[q]) for q in questions if q in targets]
    unjudged = sum(1 for e in examples if not e.relevant)
    if unjudged:
        warnings.append(f"{qrels_dir}: {unjudged} queries have no relevant document (they score 0)")
    return Collection(folder.name, documents, examples, splits, warnings)
