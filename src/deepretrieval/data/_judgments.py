"""Attach judgments to examples, counting (never silently dropping) references to unknown ids."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import DataError

Judgment = tuple[str, str, int, str, int]  # query id, doc id, grade, file name, line


def attach(
    judgments: Iterable[Judgment],
    query_ids: set[str],
    doc_ids: set[str],
    source: Path,
    warnings: list[str],
) -> dict[str, dict[str, int]]:
    """``judgments`` yields (query id, doc id, grade, file name, line). Returns query -> {doc: grade}."""
    targets: dict[str, dict[str, int]] = {}
    unknown_q: list[tuple[str, str, int]] = []
    unknown_d: list[tuple[str, str, int]] = []
    total = 0
    for qid, did, grade, name, line in judgments:
        total += 1
        if qid not in query_ids:
            unknown_q.append((qid, name, line))
        elif did not in doc_ids:
            unknown_d.append((did, name, line))
        else:
            targets.setdefault(qid, {})[did] = grade
    if total and not targets:
        raise DataError(source, f"none of its {total} judgments names a known query and document")
    for kind, items in (("queries", unknown_q), ("documents", unknown_d)):
        if items:
            first, name, line = items[0]
            warnings.append(
                f"{name}: {len(items)} judgments name unknown {kind} (first: {first!r} at line {line}); not used"
            )
    return targets


def require_relevant(targets: dict[str, dict[str, int]], source: Path, how: str) -> None:
    """Stop when no query has a relevant document: every metric would be 0, a table of zeros, not a result."""
    if not any(grade > 0 for judged in targets.values() for grade in judged.values()):
        judged = sum(len(v) for v in targets.values())
        raise DataError(
            source, f"no relevant judgment among its {judged} usable ones ({how}); every query would score 0"
        )
