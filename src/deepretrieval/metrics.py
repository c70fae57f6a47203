"""IR metrics.

Pure functions for the reward hot path (a ranked list of ids and one query's judgments), defined as
trec_eval defines them and tested equal to pytrec_eval (on a generated graded collection always, and on
real collections when ../shared is present); reports go through pytrec_eval itself (``evaluate_run``).

Relevant means grade > 0 (trec_eval's relevance level 1). Gains for nDCG are the grades themselves
(trec_eval's ``ndcg_cut``), with a log2(rank + 1) discount.

A document id named twice in a ranking counts once, at its first rank: every function here (and the
pytrec_eval path, through the same ``unique_top_k``) de-duplicates before cutting at k. Searchers already
return duplicate-free :class:`~deepretrieval.types.Ranking` objects; this covers plain lists.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from itertools import islice

Qrels = Mapping[str, int]


def unique_top_k(ranked: Sequence[str], k: int | None = None) -> list[str]:
    """The first ``k`` distinct ids (all if ``k`` is None), each at its first occurrence."""
    head = list(ranked[:k])
    # Fast path: searchers' rankings are duplicate-free, so one set of k ids is all the reward loop pays.
    if len(set(head)) == len(head):
        return head
    return list(islice(dict.fromkeys(ranked), k))


def _relevant(qrels: Qrels) -> set[str]:
    return {d for d, g in qrels.items() if g > 0}


def recall_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    relevant = _relevant(qrels)
    if not relevant:
        return 0.0
    return len(relevant.intersection(unique_top_k(ranked, k))) / len(relevant)


def precision_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    relevant = _relevant(qrels)
    # Divided by k even when fewer documents were retrieved, as trec_eval's P_k.
    return sum(1 for d in unique_top_k(ranked, k) if d in relevant) / k


def ndcg_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    gains = sorted((g for g in qrels.values() if g > 0), reverse=True)
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))
    if ideal == 0:
        return 0.0
    dcg = 0.0
    for i, doc in enumerate(unique_top_k(ranked, k)):
        grade = qrels.get(doc, 0)
        if grade > 0:
            dcg += grade / math.log2(i + 2)
    return dcg / ideal


def first_hit_rank(ranked: Sequence[str], qrels: Qrels) -> int | None:
    """1-based rank of the first relevant document among distinct ids, or None."""
    return _first_hit(unique_top_k(ranked), _relevant(qrels))


def mrr_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    rank = _first_hit(unique_top_k(ranked, k), _relevant(qrels))
    return 1.0 / rank if rank else 0.0


def success_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    """trec_eval's success_k (Hit@k): 1 when a relevant document is among the first k."""
    return 1.0 if _first_hit(unique_top_k(ranked, k), _relevant(qrels)) else 0.0


def _first_hit(unique: Sequence[str], relevant: set[str]) -> int | None:
    for i, doc in enumerate(unique, start=1):
        if doc in relevant:
            return i
    return None


_FUNCTIONS = {
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
    "precision": precision_at_k,
    "success": success_at_k,
}
_TREC = {"recall": "recall_{k}", "ndcg": "ndcg_cut_{k}", "precision": "P_{k}", "success": "success_{k}"}


def parse_measure(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ("ndcg", 10)."""
    base, sep, depth = name.partition("@")
    # ASCII digits only: str.isdigit() also accepts "²", which int() then rejects.
    if base not in _FUNCTIONS or not sep or not re.fullmatch(r"[0-9]{1,9}", depth) or int(depth) < 1:
        raise ValueError(f"unknown measure {name!r} (use recall@K, ndcg@K, mrr@K, precision@K or success@K)")
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

    trec_eval's conventions, checked against pytrec_eval 0.5.11:

    - A query with no judgments at all (empty ``qrels[qid]``) is left out: pytrec_eval returns nothing
      for it, so a mean over the result (``aggregate``) leaves it out too. Callers report how many.
    - A judged query with no relevant document (every grade 0) is kept: pytrec_eval returns 0 for
      recall, nDCG, P and recip_rank, and it counts as 0 in the mean.
    - A judged query absent from ``run`` or with an empty ranking counts as 0 (trec_eval's ``-c``);
      pytrec_eval itself leaves a query missing from the run out, which would flatter a policy that
      retrieves nothing for its hard queries.
    """
    import pytrec_eval

    parsed = [parse_measure(m) for m in measures]
    trec_names = {_trec_name(b, k) for b, k in parsed if b != "mrr"}
    trec_qrels = {qid: {d: int(g) for d, g in q.items()} for qid, q in qrels.items() if q}
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
    for qid in trec_qrels:
        row = {}
        for name, (base, k) in zip(measures, parsed, strict=True):
            if base == "mrr":
                row[name] = float(reciprocal[k].get(qid, {}).get("recip_rank", 0.0))
            else:
                row[name] = float(results.get(qid, {}).get(_trec_name(base, k), 0.0))
        per_query[qid] = row
    return per_query


def _trec_run(run: Mapping[str, Sequence[str]], k: int | None) -> dict[str, dict[str, float]]:
    """Rank order as strictly descending scores (pytrec_eval breaks score ties by doc id, not by our order)."""
    out = {}
    for qid, ranked in run.items():
        unique = unique_top_k(ranked, k)
        if unique:
            out[qid] = {doc: float(len(unique) - i) for i, doc in enumerate(unique)}
    return out


def aggregate(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean of each measure over the queries given (``evaluate_run`` gives only judged ones)."""
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
