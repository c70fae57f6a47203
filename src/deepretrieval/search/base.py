"""The Searcher contract every backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..types import Ranking


@runtime_checkable
class Searcher(Protocol):
    """Batched search: one list of hits (best first) per query.

    A query that matches nothing returns an empty list (a legitimate, scorable outcome).
    An infrastructure problem (missing index, backend outage) raises ``SearchFailure``.
    """

    def search(self, queries: Sequence[str], k: int) -> list[Ranking]: ...


def has_terms(searcher: object, text: str) -> bool:
    """Whether ``text`` gives the backend anything to search.

    A lexical backend says through its own analysis (``analyze``: stopwords, stemming, vocabulary), so
    ``!!!``, ``the of and``, a zero-width space or a special token's markup count as nothing; any other
    backend needs at least one letter or digit.
    """
    analyze = getattr(searcher, "analyze", None)
    if callable(analyze):
        return bool(analyze(text))
    return any(ch.isalnum() for ch in text)
