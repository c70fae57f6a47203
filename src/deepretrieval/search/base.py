"""The Searcher contract every backend implements, and the one order every backend ranks ties in.

Ties: documents with equal scores rank by **corpus row** (their position in the collection), first row
first, and the top k is exact under that order: a search at depth k returns the first k documents of the
full ranking by (score descending, corpus row ascending). So a ranking's top n is the same whether it was
asked for with k = 10 (a training reward) or k = 1,000 (an evaluation): k only cuts the ranking. Every
local backend follows it: BM25 (plain, batched and weighted search), dense (flat and IVF; HNSW is
approximate and its candidate list grows with k), hybrid (its fused score, then corpus row), Lucene and
the Boolean engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..types import Ranking


@runtime_checkable
class Searcher(Protocol):
    """Batched search: one list of hits (best first, ties by corpus row) per query.

    A query that matches nothing returns an empty list (a legitimate, scorable outcome).
    An infrastructure problem (missing index, backend outage) raises ``SearchFailure``.
    """

    def search(self, queries: Sequence[str], k: int) -> list[Ranking]: ...


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """The rows of the ``k`` best ``scores``, by score descending then row ascending: exact, not approximate.

    A partial sort alone (``argpartition``) keeps an arbitrary subset of the documents tied at the cut; so
    every row scoring at least the k-th best score is kept, sorted, and only then cut at k.
    """
    n = len(scores)
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        kth = np.partition(scores, n - k)[n - k]  # the k-th best score
        rows = np.flatnonzero(scores >= kth)  # ascending rows, ties at the cut included
    else:
        rows = np.arange(n)
    order = np.argsort(-scores[rows], kind="stable")  # stable: equal scores stay in row order
    return rows[order[:k]]


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
