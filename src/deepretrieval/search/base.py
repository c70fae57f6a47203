"""The two search protocols backends implement, and the one order every backend ranks ties in.

- :class:`TextSearcher`: bag-of-words retrieval (BM25, dense, hybrid, Lucene). Batched ``search`` of query
  strings, ``search_weighted`` of term-weight queries (RM3), and the term analysis RM3 reads (``analyze``,
  ``analyze_many``, ``doc_term_counts``). A backend without term statistics (dense, Lucene) still has these
  methods, and they raise a :class:`~deepretrieval.errors.DeepRetrievalError` that says which backend kinds
  have them: the protocol says what may be asked, the backend says plainly what it cannot do.
- :class:`BooleanSearcher`: PubMed-style Boolean retrieval (the local tantivy engine, PubMed, ClinicalTrials.gov).
  A batch of :class:`BooleanRequest` (query and date window) gives, per request, a ranking or the
  request's :class:`~.pubmed_syntax.QuerySyntaxError` (returned in its slot, not raised: a bad query is
  its writer's fault, not the backend's).

Either protocol: a query that matches nothing returns an empty ranking (a legitimate, scorable outcome); an
infrastructure problem (missing index, backend outage) raises ``SearchFailure`` and fails the batch.

Ties: documents with equal scores rank by **corpus row** (their position in the collection), first row
first, and the top k is exact under that order: a search at depth k returns the first k documents of the
full ranking by (score descending, corpus row ascending). So a ranking's top n is the same whether it was
asked for with k = 10 (a training reward) or k = 1,000 (an evaluation): k only cuts the ranking. Every
local backend follows it: BM25 (plain, batched and weighted search), dense (flat and IVF; HNSW is
approximate and its candidate list grows with k), hybrid (its fused score, then corpus row), Lucene and
the Boolean engine.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..types import Ranking
from .pubmed_syntax import QuerySyntaxError


@runtime_checkable
class TextSearcher(Protocol):
    """Bag-of-words retrieval: batched search, weighted search and the term analysis RM3 needs."""

    def search(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """One ranking per query (best first, ties by corpus row)."""
        ...

    def search_weighted(self, weights: Sequence[Mapping[str, float]], k: int) -> list[Ranking]:
        """One ranking per weighted query: score = sum over analysed terms of weight x term score."""
        ...

    def analyze(self, text: str) -> list[str]:
        """The index's analysis of ``text`` as a query: the terms it searches for (none: nothing to search)."""
        ...

    def analyze_many(self, texts: Sequence[str]) -> list[list[str]]:
        """The analysis of each text, in-vocabulary or not (RM3's menus map stems back to words with it)."""
        ...

    def doc_term_counts(self, doc_id: str) -> dict[str, int]:
        """One document's analysed term frequencies (RM3's relevance model)."""
        ...

    def describe(self) -> dict[str, object]:
        """What a run records about the backend (kind, settings, corpus hash)."""
        ...


@dataclass(frozen=True)
class BooleanRequest:
    """One search: PubMed-syntax ``query`` and an optional inclusive publication-date window."""

    query: str
    mindate: datetime.date | None = None
    maxdate: datetime.date | None = None


@runtime_checkable
class BooleanSearcher(Protocol):
    """PubMed-style Boolean retrieval: per request, a ranking (``total``: all matches) or its syntax verdict."""

    def search(self, requests: Sequence[BooleanRequest], k: int) -> list[Ranking | QuerySyntaxError]:
        """One result per request, in order; ``k`` 0 counts matches only."""
        ...

    def describe(self) -> dict[str, object]:
        """What a run records about the backend (kind, settings, corpus hash or service)."""
        ...


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
