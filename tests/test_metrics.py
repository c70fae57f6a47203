"""The reward hot path's metric functions equal pytrec_eval on real collections."""

from __future__ import annotations

import math
import random

import pytest
import pytrec_eval

from deepretrieval import metrics as M
from deepretrieval.data import load_collection
from deepretrieval.search.bm25 import BM25Searcher

from .conftest import shared_collection

TREC = {
    "ndcg@10": "ndcg_cut_10",
    "recall@100": "recall_100",
    "recall@1000": "recall_1000",
    "precision@10": "P_10",
    "success@1": "success_1",
    "success@10": "success_10",
}


@pytest.mark.parametrize("name", ["cranfield", "med"])
def test_pure_metrics_equal_pytrec_eval_per_query(name):
    collection = load_collection(shared_collection(name))
    searcher = BM25Searcher.build(collection.documents)
    examples = collection.examples
    hits = searcher.search([e.question for e in examples], 1000)
    run = {e.id: {h.doc_id: h.score for h in hs} for e, hs in zip(examples, hits, strict=True)}
    qrels = {e.id: dict(e.targets) for e in examples}
    measures = {"ndcg_cut.10", "recall.100,1000", "P.10", "recip_rank", "success.1,10"}
    reference = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    assert len(reference) == len(examples)
    for e, hs in zip(examples, hits, strict=True):
        # pytrec_eval breaks score ties by doc id descending; give it our order as strictly decreasing scores.
        ranked = [h.doc_id for h in hs]
        ours = {m: M.measure(m, ranked, e.targets) for m in TREC}
        strict = {e.id: {d: float(len(ranked) - i) for i, d in enumerate(ranked)}}
        ref = pytrec_eval.RelevanceEvaluator({e.id: qrels[e.id]}, measures).evaluate(strict)[e.id]
        for m, trec in TREC.items():
            assert ours[m] == pytest.approx(ref[trec], abs=1e-9), (e.id, m)
        assert M.first_hit_rank(ranked, e.targets) is None or 1 / M.first_hit_rank(ranked, e.targets) == (
            pytest.approx(ref["recip_rank"])
        )
    # And evaluate_run (the report path) averages to pytrec_eval's own means over the same rankings.
    per_query = M.evaluate_run(
        {e.id: [h.doc_id for h in hs] for e, hs in zip(examples, hits, strict=True)},
        qrels,
        ["ndcg@10", "recall@100", "mrr@10"],
    )
    ranked = {e.id: [h.doc_id for h in hs] for e, hs in zip(examples, hits, strict=True)}
    strict_run = {q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in ranked.items()}
    top_10 = {q: {d: float(10 - i) for i, d in enumerate(r[:10])} for q, r in ranked.items()}
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(strict_run)
    trec_rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top_10)

    def mean(results: dict[str, dict[str, float]], name: str) -> float:  # a query missing from the run: 0
        return sum(results.get(q, {}).get(name, 0.0) for q in qrels) / len(qrels)

    means = M.aggregate(per_query)
    assert len(per_query) == len(qrels)  # every query of these collections is judged
    assert means["ndcg@10"] == pytest.approx(mean(trec, "ndcg_cut_10"), abs=1e-12)
    assert means["recall@100"] == pytest.approx(mean(trec, "recall_100"), abs=1e-12)
    assert means["mrr@10"] == pytest.approx(mean(trec_rr, "recip_rank"), abs=1e-12)


def test_edge_cases():
    qrels = {"a": 2, "b": 1, "c": 0}
    assert M.recall_at_k([], qrels, 10) == 0.0
    assert M.recall_at_k(["c"], {"c": 0}, 10) == 0.0  # no relevant documents: 0, as trec_eval
    assert M.ndcg_at_k(["a", "b"], qrels, 10) == pytest.approx(1.0)
    # trec_eval's nDCG: gain = grade, discount log2(rank + 1): (1 + 2 / log2 3) / (2 + 1 / log2 3), by hand 0.8597
    assert M.ndcg_at_k(["b", "a"], qrels, 10) == pytest.approx(0.8597, abs=1e-4)
    assert M.ndcg_at_k(["c"], qrels, 10) == 0.0
    assert M.first_hit_rank(["x", "c", "b"], qrels) == 3
    assert M.mrr_at_k(["x", "c", "b"], qrels, 2) == 0.0
    assert M.precision_at_k(["a", "x"], qrels, 2) == 0.5


def test_evaluate_run_counts_missing_and_empty_runs_as_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    per_query = M.evaluate_run({"q1": ["a"], "q2": []}, qrels, ["recall@10", "ndcg@10", "mrr@10"])
    assert per_query["q1"] == {"recall@10": 1.0, "ndcg@10": 1.0, "mrr@10": 1.0}
    assert per_query["q2"] == per_query["q3"] == {"recall@10": 0.0, "ndcg@10": 0.0, "mrr@10": 0.0}
    assert M.aggregate(per_query)["recall@10"] == pytest.approx(1 / 3)


MEASURES = ["ndcg@10", "ndcg@100", "recall@10", "recall@100", "precision@10", "mrr@10", "success@1", "success@10"]


def generated_graded_run(seed: int = 7) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    """30 queries over 200 docs, grades 0..3: every fifth query judged with grade 0 only, q00's ranking empty,
    odd queries' rankings naming documents twice (within the top 10 and further down)."""
    rng = random.Random(seed)
    docs = [f"d{i:03d}" for i in range(200)]
    run: dict[str, list[str]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for n in range(30):
        qid = f"q{n:02d}"
        judged = rng.sample(docs, rng.randint(5, 40))
        grades = [3] + [rng.choice([0, 1, 1, 2, 3]) for _ in judged[1:]]  # at least one relevant document
        if n % 5 == 4:
            grades = [0] * len(judged)
        qrels[qid] = dict(zip(judged, grades, strict=True))
        ranking = list(dict.fromkeys(rng.sample(judged, min(3, len(judged))) + rng.sample(docs, rng.randint(1, 150))))
        if n % 2:
            ranking[2:2] = [ranking[0], ranking[1]]
            ranking += rng.sample(ranking, 5)
        run[qid] = [] if n == 0 else ranking
    return run, qrels


# Our measure -> trec_eval's, and the depth the ranking is cut at first (trec_eval's recip_rank has no cut-off).
TREC_NAMES = {
    "ndcg@10": ("ndcg_cut_10", None),
    "ndcg@100": ("ndcg_cut_100", None),
    "recall@10": ("recall_10", None),
    "recall@100": ("recall_100", None),
    "precision@10": ("P_10", None),
    "mrr@10": ("recip_rank", 10),
    "success@1": ("success_1", None),
    "success@10": ("success_10", None),
}


def pytrec_eval_reference(ranked: list[str], qrels: dict[str, int]) -> dict[str, float]:
    """pytrec_eval itself on one ranking: a repeated id counts at its first rank (first occurrences kept),
    ties impossible (strictly decreasing scores), and an empty ranking scores 0 (trec_eval -c)."""
    distinct = list(dict.fromkeys(ranked))
    trec_measures = {"ndcg_cut.10,100", "recall.10,100", "P.10", "success.1,10"}
    reference = {}
    for cut in (None, 10):
        docs = distinct[:cut]
        run = {"q": {d: float(len(docs) - i) for i, d in enumerate(docs)}}
        evaluator = pytrec_eval.RelevanceEvaluator({"q": qrels}, {"recip_rank"} if cut else trec_measures)
        scores = evaluator.evaluate(run).get("q", {}) if docs else {}
        reference |= {m: scores.get(t, 0.0) for m, (t, c) in TREC_NAMES.items() if c == cut}
    return reference


def test_pure_metrics_equal_pytrec_eval_on_a_generated_graded_collection():
    run, qrels = generated_graded_run()
    per_query = M.evaluate_run(run, qrels, MEASURES)
    assert per_query.keys() == qrels.keys()  # every query is judged, the all-zero ones too
    for qid, ranked in run.items():
        reference = pytrec_eval_reference(ranked, qrels[qid])
        for m in MEASURES:
            assert M.measure(m, ranked, qrels[qid]) == pytest.approx(reference[m], abs=1e-12), (qid, m)
            assert per_query[qid][m] == pytest.approx(reference[m], abs=1e-12), (qid, m)
    # The collection exercises what it claims: graded gains, duplicates, all-zero queries, an empty ranking.
    assert {g for q in qrels.values() for g in q.values()} == {0, 1, 2, 3}
    assert sum(len(r) != len(set(r)) for r in run.values()) == 15 and run["q00"] == []
    assert all(per_query[q] == dict.fromkeys(MEASURES, 0.0) for q in qrels if not any(qrels[q].values()))
    for m in MEASURES:
        assert 0.0 < M.aggregate(per_query)[m] < 1.0, m


def test_duplicate_ids_count_once_at_their_first_rank_on_both_paths():
    ranked = ["x", "x", "a", "a", "b", "c"]  # distinct: x a b c
    qrels = {"a": 2, "b": 1, "c": 3}
    measures = ["recall@3", "precision@3", "ndcg@3", "mrr@3"]
    ideal = 3 + 2 / math.log2(3) + 1 / math.log2(4)
    expected = {
        "recall@3": 2 / 3,
        "precision@3": 2 / 3,
        "ndcg@3": (2 / math.log2(3) + 1 / math.log2(4)) / ideal,
        "mrr@3": 1 / 2,
    }
    pure = {m: M.measure(m, ranked, qrels) for m in measures}
    trec = M.evaluate_run({"q": ranked}, {"q": qrels}, measures)["q"]
    assert pure == pytest.approx(expected, abs=1e-12)
    assert trec == pytest.approx(expected, abs=1e-12)
    assert M.first_hit_rank(ranked, qrels) == 2
    assert M.unique_top_k(ranked, 3) == ["x", "a", "b"] and M.unique_top_k(ranked) == ["x", "a", "b", "c"]


@pytest.mark.parametrize("name", ["ndcg@²", "recall@١٠", "ndcg@" + "9" * 5000, "ndcg@0", "ndcg", "map@10"])
def test_a_measure_name_that_is_not_ascii_digits_is_refused_with_one_message(name):
    """'²'.isdigit() is True but int('²') raises: such names are refused like any unknown measure."""
    from deepretrieval.metrics import parse_measure

    with pytest.raises(ValueError, match="unknown measure"):
        parse_measure(name)


def test_a_well_formed_measure_name_is_read():
    from deepretrieval.metrics import parse_measure

    assert parse_measure("ndcg@10") == ("ndcg", 10) and parse_measure("recall@3000") == ("recall", 3000)
