"""What every loader shares: judgments attached to examples, grades, duplicate records, indexable text.

Nothing is dropped or merged silently: a reference to an unknown id, a repeated record or judgment is
counted in a warning; anything that would change results (two contents for one id, two grades for one
pair, a fractional grade, a corpus BM25 cannot index) is a :class:`DataError` naming file and line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from ..errors import DataError
from ..types import Document

Judgment = tuple[str, str, int, str, int]  # query id, doc id, grade, file name, line
# (query id, doc id) -> (grade, file name, line) of its first judgment; shared across a collection's files.
Seen = dict[tuple[str, str], tuple[int, str, int]]
Content = TypeVar("Content")  # compared with ==

# bm25s.tokenize's default splitter: lower-cased words of two or more letters or digits.
WORDS = re.compile(r"(?u)\b\w\w+\b")


def attach(
    judgments: Iterable[Judgment],
    query_ids: set[str],
    doc_ids: set[str],
    source: Path,
    warnings: list[str],
    seen: Seen | None = None,
) -> dict[str, dict[str, int]]:
    """``judgments`` yields (query id, doc id, grade, file name, line). Returns query -> {doc: grade}.

    A pair judged twice with one grade is counted; with two grades it is an error (which one is right is
    the user's call). ``seen`` carries first judgments across files, so a conflict between splits is found.
    """
    seen = {} if seen is None else seen
    targets: dict[str, dict[str, int]] = {}
    unknown_q: list[tuple[str, str, int]] = []
    unknown_d: list[tuple[str, str, int]] = []
    repeated: list[tuple[tuple[str, str], str, int]] = []
    total = 0
    for qid, did, grade, name, line in judgments:
        total += 1
        if qid not in query_ids:
            unknown_q.append((qid, name, line))
        elif did not in doc_ids:
            unknown_d.append((did, name, line))
        else:
            if (qid, did) in seen:
                _check_same_grade(seen[qid, did], qid, did, grade, name, line)
                repeated.append(((qid, did), name, line))
            else:
                seen[qid, did] = (grade, name, line)
            # A repeat (same grade) still puts its query in this file's split.
            targets.setdefault(qid, {})[did] = grade
    if total and not targets:
        raise DataError(source, f"none of its {total} judgments names a known query and document")
    for kind, items in (("queries", unknown_q), ("documents", unknown_d)):
        if items:
            first, name, line = items[0]
            warnings.append(
                f"{name}: {len(items)} judgments name unknown {kind} (first: {first!r} at line {line}); not used"
            )
    if repeated:
        pair, name, line = repeated[0]
        warnings.append(
            f"{name}: {len(repeated)} judgments repeat an earlier one with the same grade "
            f"(first: {pair} at line {line}); each pair is counted once"
        )
    return targets


def _check_same_grade(first: tuple[int, str, int], qid: str, did: str, grade: int, name: str, line: int) -> None:
    old, old_name, old_line = first
    if old != grade:
        raise DataError(
            name,
            f"query {qid!r} grades document {did!r} {grade}, but {old} at {old_name}:{old_line} (one grade per pair)",
            line=line,
        )


def integral_grade(value: float, path: str | Path, line: int, *, what: str = "grade") -> int:
    """A grade that is a whole number (``2`` or ``2.0``); trec_eval grades are integers, so 0.5 is not rounded."""
    if isinstance(value, int):  # as is: math.isfinite cannot take an int beyond the float range
        return value
    if not math.isfinite(value):
        raise DataError(path, f"{what} {value} is not a finite number", line=line)
    if value != int(value):
        raise DataError(path, f"{what} {value} is not an integer (trec_eval grades are integers)", line=line)
    return int(value)


def unique(
    records: Iterable[tuple[str, Content, int]], path: Path, what: str, warnings: list[str]
) -> dict[str, tuple[Content, int]]:
    """(id, content, line) -> {id: (content, line)} in first-seen order.

    An id repeated with the same content is counted and its first occurrence kept; with other content it
    is an error: which one the user meant is not ours to guess.
    """
    kept: dict[str, tuple[Content, int]] = {}
    repeats: list[tuple[str, int]] = []
    for record_id, content, line in records:
        if record_id not in kept:
            kept[record_id] = (content, line)
        elif kept[record_id][0] == content:
            repeats.append((record_id, line))
        else:
            raise DataError(
                path,
                f"duplicate {what} id {record_id!r} with other content than at line {kept[record_id][1]}",
                line=line,
            )
    if repeats:
        first, line = repeats[0]
        warnings.append(
            f"{path.name}: {len(repeats)} duplicate {what} ids (first: {first!r} at line {line}); "
            "identical to the first occurrence, which is kept"
        )
    return kept


def require_indexable(documents: Sequence[Document], path: Path) -> None:
    """Stop when BM25 would have no term to index (bm25s fails deep inside indexing with a traceback).

    The test is bm25s's default analysis: a word of two or more letters or digits that is not an English
    stopword. A few empty documents are fine (Cranfield has two); a corpus of nothing but them is not.
    """
    from bm25s.stopwords import STOPWORDS_EN

    stopwords = set(STOPWORDS_EN)
    for document in documents:
        if any(word not in stopwords for word in WORDS.findall(document.contents.lower())):
            return
    raise DataError(
        path,
        f"none of its {len(documents)} documents has indexable text (every title and text is empty or only "
        "stopwords and punctuation); BM25 would have nothing to search",
    )


def require_relevant(targets: dict[str, dict[str, int]], source: Path, how: str) -> None:
    """Stop when no query has a relevant document: every metric would be 0, a table of zeros, not a result."""
    if not any(grade > 0 for judged in targets.values() for grade in judged.values()):
        judged = sum(len(v) for v in targets.values())
        raise DataError(
            source, f"no relevant judgment among its {judged} usable ones ({how}); every query would score 0"
        )
