"""Hybrid search: reciprocal-rank fusion (Cormack et al., 2009) of a BM25 and a dense ranking, fused by ranx.

A document's fused score is the sum, over the parts that rank it within their top ``depth``, of
1 / (rrf_k + rank). ranx is given each part's ranks (not its raw scores). A query only one part can rank
(BM25 finds no indexed term) keeps that part's order, scored the same way: ranx fuses two runs or more,
and fusing one list is that list.

The fusion depth is ``depth`` whatever k is, so the fused ranking never depends on k (k only cuts it):
a training reward at k = 10 and an evaluation at k = 1,000 see the same top 10. A search for more than
the fused documents (k > depth) goes on with those both parts rank below ``depth``, each scored
1 / (rrf_k + its better rank in either part) — below every fused score, and again independent of k. Ties
(equal fused scores: ranks 1 and 3 against 3 and 1, say) rank by corpus row, as in every backend (see
:mod:`.base`); parts without corpus rows (test doubles) tie by document id.

Term statistics come from the BM25 part: ``analyze``, ``doc_term_counts`` and ``search_weighted`` are
BM25's, so the RM3 modes (``feedback``, ``expand-rm3``, ``select-rm3``) and the ``prf`` baseline work on a hybrid
backend — their feedback documents come from the fused first pass, the final weighted query runs on BM25
alone. ``has_terms`` therefore asks BM25 too: a query of stopwords only is an empty query, as on BM25.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from ..errors import DeepRetrievalError
from ..types import Ranking
from .base import TextSearcher
from .specs import FusionSpec


@dataclass(frozen=True)
class HybridSettings:
    """RRF's settings (defaults: ``search.specs.FusionSpec``)."""

    rrf_k: int = FusionSpec.model_fields["rrf_k"].default  # RRF's constant: larger flattens the gap between ranks
    depth: int = FusionSpec.model_fields["depth"].default  # each part's documents that are fused

    def __post_init__(self) -> None:
        for name in ("rrf_k", "depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DeepRetrievalError(f"backend.{name}: must be a positive integer, got {value!r}")


class HybridSearcher(TextSearcher):
    """A :class:`~.base.TextSearcher`: RRF of a lexical (BM25) and a dense searcher; term statistics are BM25's."""

    def __init__(self, lexical: TextSearcher, dense: TextSearcher, settings: HybridSettings | None = None) -> None:
        self.lexical, self.dense = lexical, dense
        self.settings = settings or HybridSettings()
        ids = getattr(lexical, "doc_ids", None)  # both parts index one corpus, in one order
        self._rows: dict[str, int] | None = None if ids is None else {d: i for i, d in enumerate(ids)}

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
        reach = max(k, self.settings.depth)  # beyond depth only to fill places below the fused documents
        lexical = self.lexical.search(unique, reach)
        dense = self.dense.search(unique, reach)
        fused = rrf(
            dict(zip(unique, lexical, strict=True)),
            dict(zip(unique, dense, strict=True)),
            self.settings.rrf_k,
            depth=self.settings.depth,
            rows=self._rows,
        )
        return [fused[q][:k] for q in queries]

    # -- term statistics: BM25's ------------------------------------------------------------------
    def analyze(self, text: str) -> list[str]:
        return self.lexical.analyze(text)

    def analyze_many(self, texts: Sequence[str]) -> list[list[str]]:
        return self.lexical.analyze_many(texts)

    def doc_term_counts(self, doc_id: str) -> dict[str, int]:
        return self.lexical.doc_term_counts(doc_id)

    def search_weighted(self, weights: Sequence[Mapping[str, float]], k: int) -> list[Ranking]:
        return self.lexical.search_weighted(weights, k)


def rrf(
    first: Mapping[str, Ranking],
    second: Mapping[str, Ranking],
    rrf_k: int,
    *,
    depth: int | None = None,
    rows: Mapping[str, int] | None = None,
) -> dict[str, Ranking]:
    """Reciprocal-rank fusion of two rankings per query (same keys) over each one's top ``depth`` (None:
    all), then the documents both rank deeper, by their better rank; best first, ties by ``rows`` (else id)."""
    fused: dict[str, dict[str, float]] = {}
    both = [q for q in first if first[q].ids and second[q].ids]
    if both:
        from ranx import Run, fuse

        runs = [Run.from_dict({q: _rank_scores(part[q].ids[:depth]) for q in both}) for part in (first, second)]
        # RRF reads ranks only: a score normalisation (ranx defaults to min-max) would change nothing.
        fused = fuse(runs, norm=None, method="rrf", params={"k": rrf_k}).to_dict()
    ranked = {}
    for q in first:
        scores = dict(fused.get(q) or _reciprocal_ranks(first[q].ids[:depth] or second[q].ids[:depth], rrf_k))
        if depth is not None:
            scores |= _below_depth((first[q].ids, second[q].ids), depth, rrf_k, scores)
        ranked[q] = _ranked(scores, rows)
    return ranked


def _below_depth(
    parts: Sequence[Sequence[str]], depth: int, rrf_k: int, fused: Mapping[str, float]
) -> dict[str, float]:
    """Documents ranked below ``depth`` by every part that ranks them: 1 / (rrf_k + their better rank)."""
    deeper: dict[str, float] = {}
    for ids in parts:
        for rank, d in enumerate(ids[depth:], start=depth + 1):
            if d not in fused:
                deeper[d] = max(deeper.get(d, 0.0), 1.0 / (rrf_k + rank))
    return deeper


def _reciprocal_ranks(ids: Sequence[str], rrf_k: int) -> dict[str, float]:
    return {d: 1.0 / (rrf_k + rank) for rank, d in enumerate(ids, start=1)}


def _rank_scores(ids: Sequence[str]) -> dict[str, float]:
    """Strictly decreasing scores in the ranking's order: ranx ranks by score, and RRF reads only ranks."""
    return {d: float(len(ids) - i) for i, d in enumerate(ids)}


def _ranked(scores: Mapping[str, float], rows: Mapping[str, int] | None) -> Ranking:
    def tie(d: str) -> tuple[int, str]:
        return (rows.get(d, len(rows)), d) if rows is not None else (0, d)

    order = sorted(scores.items(), key=lambda item: (-item[1], tie(item[0])))
    return Ranking([d for d, _ in order], [s for _, s in order])
