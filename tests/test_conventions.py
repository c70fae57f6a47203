"""trec_eval's conventions for means, duplicate-free rankings, and how reports show what is missing."""

from __future__ import annotations

import json
import math

import matplotlib
import pytest
import pytrec_eval

from deepretrieval import metrics as M
from deepretrieval.evaluate import score_runs
from deepretrieval.report import NON_METRIC_KEYS, draw_comparison, markdown_table, metric_names
from deepretrieval.types import Example, Hit, Ranking

matplotlib.use("Agg")

MEASURES = ["recall@10", "ndcg@10", "precision@10", "mrr@10"]
TREC = {"recall@10": "recall_10", "ndcg@10": "ndcg_cut_10", "precision@10": "P_10", "mrr@10": "recip_rank"}
# judged: relevant documents; no_relevant: judged, every grade 0; unjudged: no judgment at all.
QRELS = {"judged": {"a": 2, "b": 0}, "no_relevant": {"a": 0, "b": 0}, "unjudged": {}}
RUN = {"judged": ["b", "a"], "no_relevant": ["a", "b"], "unjudged": ["a"]}


def test_evaluate_run_keeps_exactly_the_queries_pytrec_eval_scores():
    strict = {q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in RUN.items()}
    reference = pytrec_eval.RelevanceEvaluator(QRELS, {"recall.10", "ndcg_cut.10", "P.10", "recip_rank"})
    expected = reference.evaluate(strict)
    assert expected.keys() == {"judged", "no_relevant"}  # pytrec_eval: unjudged out, all-zero kept
    ours = M.evaluate_run(RUN, QRELS, MEASURES)
    assert ours.keys() == expected.keys()
    for qid, row in ours.items():
        assert row == pytest.approx({m: expected[qid][t] for m, t in TREC.items()}, abs=1e-12)
    assert ours["no_relevant"] == dict.fromkeys(MEASURES, 0.0)
    # The mean is over the two judged queries; the all-zero one pulls it down as in pytrec_eval.
    assert M.aggregate(ours)["recall@10"] == pytest.approx(0.5)


def test_judged_query_with_nothing_retrieved_counts_as_zero_like_trec_eval_c():
    qrels = {"hit": {"a": 1}, "empty": {"a": 1}, "absent": {"a": 1}, "unjudged": {}}
    per_query = M.evaluate_run({"hit": ["a"], "empty": [], "unjudged": []}, qrels, MEASURES)
    assert per_query.keys() == {"hit", "empty", "absent"}
    assert per_query["empty"] == per_query["absent"] == dict.fromkeys(MEASURES, 0.0)
    assert M.aggregate(per_query)["recall@10"] == pytest.approx(1 / 3)


def test_score_runs_averages_judged_queries_and_reports_the_unjudged(tmp_path):
    examples = [Example(qid, qid, dict(q)) for qid, q in QRELS.items()]
    runs = tmp_path / "runs.jsonl"
    runs.write_text("".join(json.dumps({"id": q, "ranked": r}) + "\n" for q, r in RUN.items()))
    summary = score_runs(runs, examples, MEASURES)
    assert summary["queries"] == 2 and summary["unjudged_queries"] == 1
    assert summary["recall@10"] == pytest.approx(0.5)
    assert summary["ndcg@10"] == pytest.approx(2 / math.log2(3) / 2 / 2)


def test_ranking_keeps_the_first_occurrence_of_each_id():
    ranking = Ranking(["a", "b", "a", "c", "b"], [5.0, 4.0, 3.0, 2.0, 1.0])
    assert ranking.ids == ["a", "b", "c"] and ranking.scores == [5.0, 4.0, 2.0]
    assert list(ranking) == [Hit("a", 5.0), Hit("b", 4.0), Hit("c", 2.0)]
    assert ranking[1:].ids == ["b", "c"] and ranking[1:].scores == [4.0, 2.0]
    ids = ["x", "y"]
    assert Ranking(ids, [2.0, 1.0]).ids is ids  # no copy when there is nothing to drop
    assert Ranking(["a", "a"]).scores == [0.0]


SUMMARIES = {
    "original": {"policy": "original", "queries": 3, "unjudged_queries": 1, "ndcg@10": 0.5, "recall@10": 0.4},
    "old": {"policy": "old", "queries": 4, "ndcg@10": 0.6},  # an older run: no recall@10, no unjudged count
}


def test_reports_show_missing_values_as_missing_and_the_unjudged_count():
    assert "unjudged_queries" in NON_METRIC_KEYS
    assert metric_names(SUMMARIES) == ["ndcg@10", "recall@10"]
    lines = markdown_table(SUMMARIES).splitlines()
    assert lines[0] == "| policy | queries | unjudged (left out) | ndcg@10 | recall@10 |"
    assert lines[2] == "| original | 3 | 1 | 0.500 | 0.400 |"
    assert lines[3] == "| old | 4 | — | 0.600 | — |"


def test_plot_draws_no_bar_for_a_missing_metric():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        draw_comparison(ax, SUMMARIES)
        bars = {c.get_label(): [round(p.get_height(), 6) for p in c.patches] for c in ax.containers}
    finally:
        plt.close(fig)
    assert bars == {"original": [0.5, 0.4], "old": [0.6]}
