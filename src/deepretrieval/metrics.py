"""IR metrics.

Pure functions for the reward hot path (a ranked list of ids and one query's judgments), defined as
trec_eval defines them and tested equal to pytrec_eval on real collections; reports go through
pytrec_eval itself (``evaluate_run``).

Relevant means grade > 0 (trec_eval's relevance level 1). Gains for nDCG are the grades themselves
(trec_eval's ``ndcg_cut``), with a log2(rank + 1) discount.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Qrels = Mapping[str, int]


def _relevant(qrels: Qrels) -> set[str]:
    return {d for d, g in qrels.items() if g > 0}


def recall_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    relevant = _relevant(qrels)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def precision_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    relevant = _relevant(qrels)
    return sum(1 for d in ranked[:k] if d in relevant) / k


def ndcg_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    gains = sorted((g for g in qrels.values() if g > 0), reverse=True)
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))
    if ideal == 0:
        return 0.0
    seen: set[str] = set()
    dcg = 0.0
    for i, doc in enumerate(ranked[:k]):
        if doc in seen:  # a duplicate id earns nothing twice
            continue
        seen.add(doc)
        grade = qrels.get(doc, 0)
        if grade > 0:
            dcg += grade / math.log2(i + 2)
    return dcg / ideal


def first_hit_rank(ranked: Sequence[str], qrels: Qrels) -> int | None:
    """1-based rank of the first relevant document, or None."""
    relevant = _relevant(qrels)
    for i, doc in enumerate(ranked, start=1):
        if doc in relevant:
            return i
    return None


def mrr_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    rank = first_hit_rank(ranked[:k], qrels)
    return 1.0 / rank if rank else 0.0


_FUNCTIONS = {"recall": recall_at_k, "ndcg": ndcg_at_k, "mrr": mrr_at_k, "precision": precision_at_k}
_TREC = {"recall": "recall_{k}", "ndcg": "ndcg_cut_{k}", "precision": "P_{k}"}


def parse_measure(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ("ndcg", 10)."""
    base, sep, depth = name.partition("@")
    if base not in _FUNCTIONS or not sep or not depth.isdigit() or int(depth) < 1:
        raise ValueError(f"unknown measure {name!r} (use recall@K, ndcg@K, mrr@K or precision@K)")
    return base, int(depth)


def measure(name: str, ranked: Sequence[str], qrels: Qrels) -> float:
    base, k = parse_measure(name)
    return _FUNCTIONS[base](ranked, qrels, k)


def evaluate_run(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Qrels],
    measures: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Per-query metrics computed by pytrec_eval (mrr@K: trec_eval's recip_rank on the top K).

    Every query in ``qrels`` gets a value: pytrec_eval skips queries absent from the run or with an empty
    ranking, and those count as 0 here, as they should for an honest mean.
    """
    import pytrec_eval

    parsed = [parse_measure(m) for m in measures]
    trec_names = {_trec_name(b, k) for b, k in parsed if b != "mrr"}
    # Rank order is what counts: scores descending by rank, ties impossible.
    trec_qrels = {qid: {d: int(g) for d, g in q.items()} for qid, q in qrels.items()}
    results: dict[str, dict[str, float]] = {}
    if trec_names:
        base_names = {n.rsplit("_", 1)[0] for n in trec_names}
        evaluator = pytrec_eval.RelevanceEvaluator(trec_qrels, _expand(trec_names, base_names))
        results = evaluator.evaluate(_trec_run(run, None))
    reciprocal: dict[int, dict[str, dict[str, float]]] = {}
    for k in sorted({k for b, k in parsed if b == "mrr"}):
        evaluator = pytrec_eval.RelevanceEvaluator(trec_qrels, {"recip_rank"})
        reciprocal[k] = evaluator.evaluate(_trec_run(run, k))
    per_query: dict[str, dict[str, float]] = {}
    for qid in qrels:
        row = {}
        for name, (base, k) in zip(measures, parsed, strict=True):
            if base == "mrr":
                row[name] = float(reciprocal[k].get(qid, {}).get("recip_rank", 0.0))
            else:
                row[name] = float(results.get(qid, {}).get(_trec_name(base, k), 0.0))
        per_query[qid] = row
    return per_query


def _trec_run(run: Mapping[str, Sequence[str]], k: int | None) -> dict[str, dict[str, float]]:
    """Rank order as descending scores (no ties), first occurrence of a duplicate id kept."""
    out = {}
    for qid, ranked in run.items():
        unique = list(dict.fromkeys(ranked))[:k]
        if unique:
            out[qid] = {doc: float(len(unique) - i) for i, doc in enumerate(unique)}
    return out


def aggregate(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean of each measure over queries."""
    if not per_query:
        return {}
    names = next(iter(per_query.values())).keys()
    return {n: sum(q[n] for q in per_query.values()) / len(per_query) for n in names}


def _trec_name(base: str, k: int) -> str:
    return _TREC[base].format(k=k)


def _expand(names: set[str], base_names: set[str]) -> set[str]:
    # pytrec_eval takes measure families with explicit cut-offs: "ndcg_cut.10,100".
    out = set()
    for base in base_names:
        cuts = sorted(int(n.rsplit("_", 1)[1]) for n in names if n.rsplit("_", 1)[0] == base)
        family = "P" if base == "P" else base
        out.add(f"{family}.{','.join(map(str, cuts))}")
    return out
