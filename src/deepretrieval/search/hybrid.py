"""Hybrid search: reciprocal-rank fusion (Cormack et al., 2009) of a BM25 and a dense ranking, fused by ranx.

Each part ranks ``depth`` documents (at least k); a document's fused score is the sum over the parts that
rank it of 1 / (rrf_k + rank). ranx is given each part's ranks (not its raw scores), so ties inside one
part keep the order that part returned. A query only one part can rank (BM25 finds no indexed term) keeps
that part's order, scored the same way: ranx fuses two runs or more, and fusing one list is that list.

Term statistics come from the BM25 part: ``analyze``, ``doc_term_counts`` and ``search_weighted`` are
BM25's, so the RM3 modes (``feedback``, ``expand-rm3``, ``select-rm3``) and the ``prf`` baseline work on a hybrid
backend — their feedback documents come from the fused first pass, the final weighted query runs on BM25
alone. ``has_terms`` therefore asks BM25 too: a query of stopwords only is an empty query, as on BM25.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import DeepRetrievalError
from ..types import Ranking


@dataclass(frozen=True)
class HybridSettings:
    rrf_k: int = 60  # RRF's constant: larger flattens the gap between ranks
    depth: int = 100  # documents each part ranks before fusion (k when k is larger)

    def __post_init__(self) -> None:
        for name in ("rrf_k", "depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DeepRetrievalError(f"backend.{name}: must be a positive integer, got {value!r}")


class HybridSearcher:
    """Implements the ``Searcher`` protocol: RRF of a lexical (BM25) and a dense searcher."""

    def __init__(self, lexical: Any, dense: Any, settings: HybridSettings | None = None) -> None:
        self.lexical, self.dense = lexical, dense
        self.settings = settings or HybridSettings()

    def describe(self) -> dict[str, object]:
        return {
            "backend": "hybrid-rrf",
            **asdict(self.settings),
            "bm25": self.lexical.describe(),
            "dense": self.dense.describe(),
        }

    def search(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """One batched search per part over the distinct queries, fused; rankings in input order."""
        if not queries:
            return []
        unique = list(dict.fromkeys(queries))
        depth = max(k, self.settings.depth)
        lexical = self.lexical.search(unique, depth)
        dense = self.dense.search(unique, depth)
        fused = rrf(dict(zip(unique, lexical, strict=True)), dict(zip(unique, dense, strict=True)), self.settings.rrf_k)
        return [fused[q][:k] for q in queries]

    # -- term statistics: BM25's ------------------------------------------------------------------
    def analyze(self, text: str) -> list[str]:
        return self.lexical.analyze(text)

    def _analyze_many(self, texts: Sequence[str]) -> list[list[str]]:
        return self.lexical._analyze_many(texts)

    def doc_term_counts(self, doc_id: str) -> dict[str, int]:
        return self.lexical.doc_term_counts(doc_id)

    def search_weighted(self, weights: Sequence[Mapping[str, float]], k: int) -> list[Ranking]:
        return self.lexical.search_weighted(weights, k)


def rrf(first: Mapping[str, Ranking], second: Mapping[str, Ranking], rrf_k: int) -> dict[str, Ranking]:
    """Reciprocal-rank fusion of two rankings per query (same keys), best first; ties by document id."""
    both = [q for q in first if first[q].ids and second[q].ids]
    fused: dict[str, Ranking] = {}
    if both:
        from ranx import Run, fuse

        runs = [Run.from_dict({q: _rank_scores(part[q]) for q in both}) for part in (first, second)]
        # RRF reads ranks only: a score normalisation (ranx defaults to min-max) would change nothing.
        scores = fuse(runs, norm=None, method="rrf", params={"k": rrf_k}).to_dict()
        fused = {q: _ranked(scores[q]) for q in both}
    for q in first:
        if q not in fused:
            alone = first[q] if first[q].ids else second[q]
            fused[q] = _ranked({d: 1.0 / (rrf_k + rank) for rank, d in enumerate(alone.ids, start=1)})
    return fused


def _rank_scores(ranking: Ranking) -> dict[str, float]:
    """Strictly decreasing scores in the ranking's order: ranx ranks by score, and RRF reads only ranks."""
    n = len(ranking.ids)
    return {d: float(n - i) for i, d in enumerate(ranking.ids)}


def _ranked(scores: Mapping[str, float]) -> Ranking:
    order = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return Ranking([d for d, _ in order], [s for _, s in order])
