from __future__ import annotations

import json
from dataclasses import replace

import pytest

from deepretrieval import metrics as M
from deepretrieval.errors import DeepRetrievalError
from deepretrieval.evaluate import EvalSettings, evaluate, load_policy_metrics
from deepretrieval.policies import FeedbackSettings, OriginalPolicy, PRFPolicy
from deepretrieval.policies.base import PolicyOutput
from deepretrieval.search.bm25 import BM25Searcher, BM25Settings
from deepretrieval.types import Example

from .conftest import CountingPolicy

SETTINGS = EvalSettings(k=10, batch_size=1, measures=("ndcg@10", "recall@10", "mrr@10"))


class FixedPolicy:
    name = "fixed"

    def __init__(self, queries):
        self.queries = queries

    def generate(self, examples):
        return [PolicyOutput(query=self.queries[e.id]) for e in examples]

    def describe(self):
        return {"policy": self.name}


@pytest.fixture
def searcher(small_collection):
    return BM25Searcher.build(small_collection.documents, BM25Settings())


def test_evaluate_writes_runs_metrics_report_and_plot(small_collection, searcher, tmp_path):
    results = evaluate(small_collection, "all", [OriginalPolicy()], searcher, tmp_path, SETTINGS)
    top = json.loads((tmp_path / "metrics.json").read_text())
    assert top["policy"] == "original" and top["queries"] == 4 and top["unjudged_queries"] == 0
    assert set(SETTINGS.measures) <= top.keys()
    lines = [json.loads(x) for x in results[0].runs_path.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["q1", "q2", "q3", "q4"]
    # The per-query metrics written to runs.jsonl agree with the pytrec_eval aggregate.
    mean_ndcg = sum(x["metrics"]["ndcg@10"] for x in lines) / 4
    assert top["ndcg@10"] == pytest.approx(mean_ndcg, abs=1e-9)
    assert "| original |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "comparison.png").read_bytes().startswith(b"\x89PNG")


def test_unjudged_queries_are_run_but_left_out_of_the_means_and_counted(small_collection, searcher, tmp_path):
    unjudged = Example("q5", "vegetables and fruit", {})
    collection = replace(small_collection, examples=[*small_collection.examples, unjudged])
    results = evaluate(collection, "all", [OriginalPolicy()], searcher, tmp_path, SETTINGS)
    top = json.loads((tmp_path / "metrics.json").read_text())
    assert top["queries"] == 4 and top["unjudged_queries"] == 1
    assert top["policies"]["original"]["unjudged_queries"] == 1
    lines = [json.loads(x) for x in results[0].runs_path.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["q1", "q2", "q3", "q4", "q5"]  # still searched and written
    judged = [x for x in lines if x["id"] != "q5"]
    for name in SETTINGS.measures:
        assert top[name] == pytest.approx(sum(x["metrics"][name] for x in judged) / 4, abs=1e-9)
    assert "| original | 4 | 1 |" in (tmp_path / "report.md").read_text()


def test_a_split_without_judgments_is_a_clear_error(small_collection, searcher, tmp_path):
    unjudged = [replace(e, targets={}) for e in small_collection.examples]
    with pytest.raises(DeepRetrievalError, match="no query with judgments"):
        evaluate(replace(small_collection, examples=unjudged), "all", [OriginalPolicy()], searcher, tmp_path, SETTINGS)


def test_a_better_query_scores_higher(small_collection, searcher, tmp_path):
    fixed = FixedPolicy(
        {
            "q1": "myocardial infarction",
            "q2": "hypertension",
            "q3": "nephrolithiasis",
            "q4": "myocardial infarction mortality",
        }
    )
    evaluate(small_collection, "all", [OriginalPolicy(), fixed], searcher, tmp_path, SETTINGS)
    both = load_policy_metrics(tmp_path)
    assert list(both) == ["original", "fixed"]
    assert both["fixed"]["recall@10"] == 1.0
    assert both["original"]["recall@10"] < 1.0


def test_resume_skips_done_queries_and_repairs_a_torn_line(small_collection, searcher, tmp_path):
    first = CountingPolicy()
    evaluate(small_collection, "all", [first], searcher, tmp_path, SETTINGS)
    runs = tmp_path / "policies" / "original" / "runs.jsonl"
    complete = runs.read_text()
    lines = complete.splitlines(keepends=True)
    runs.write_text("".join(lines[:2]) + lines[2][:15])  # interrupted mid-write of the third line
    again = CountingPolicy()
    evaluate(small_collection, "all", [again], searcher, tmp_path, SETTINGS)
    assert again.seen == ["q3", "q4"]
    assert runs.read_text() == complete


def test_resume_with_other_settings_is_refused(small_collection, searcher, tmp_path):
    evaluate(small_collection, "all", [OriginalPolicy()], searcher, tmp_path, SETTINGS)
    with pytest.raises(DeepRetrievalError, match="other settings"):
        evaluate(small_collection, "all", [OriginalPolicy()], searcher, tmp_path, EvalSettings(k=2000, batch_size=1))
    evaluate(small_collection, "all", [OriginalPolicy()], searcher, tmp_path, EvalSettings(k=2000), overwrite=True)


def test_unknown_split_is_a_clear_error(small_collection, searcher, tmp_path):
    with pytest.raises(DeepRetrievalError, match="no split 'dev'"):
        evaluate(small_collection, "dev", [OriginalPolicy()], searcher, tmp_path, SETTINGS)


def test_prf_adds_feedback_terms_and_keeps_the_original(small_collection, searcher):
    policy = PRFPolicy(searcher, FeedbackSettings(fb_docs=2, fb_terms=5, original_weight=0.5))
    out = policy.generate([small_collection.examples[0]])[0]
    weights = dict(out.action.terms)
    assert sum(weights.values()) == pytest.approx(1.0)
    analyzed = set(searcher.analyze("heart attack treatment"))
    assert analyzed <= weights.keys()
    # Feedback from the top documents brings in a term the user never wrote.
    assert set(weights) - analyzed


def test_prf_with_zero_feedback_weight_equals_original(small_collection, searcher):
    policy = PRFPolicy(searcher, FeedbackSettings(fb_docs=3, fb_terms=5, original_weight=1.0))
    examples = small_collection.examples
    outputs = policy.generate(examples)
    weighted = searcher.search_weighted([dict(o.action.terms) for o in outputs], 5)
    plain = searcher.search([e.question for e in examples], 5)
    for w, p in zip(weighted, plain, strict=True):
        assert [h.doc_id for h in w] == [h.doc_id for h in p]


def test_measure_names_dispatch():
    ranked, qrels = ["a", "b", "c"], {"b": 1, "z": 2}
    assert M.measure("recall@2", ranked, qrels) == pytest.approx(0.5)
    assert M.measure("mrr@10", ranked, qrels) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        M.measure("bogus@3", ranked, qrels)


def test_paired_test_reports_the_difference_and_its_significance(tmp_path):
    from deepretrieval.data import load_collection
    from deepretrieval.evaluate import paired_test
    from deepretrieval.policies import OraclePolicy
    from deepretrieval.tasks import get_task

    collection = load_collection("demo")
    backend = get_task("retrieval").backend(collection, {})
    settings = EvalSettings(k=100, batch_size=32, measures=("ndcg@10", "recall@100"))
    evaluate(collection, "test", [OriginalPolicy(), OraclePolicy()], backend, tmp_path, settings)
    means = load_policy_metrics(tmp_path)
    examples = [e for e in collection.split("test") if e.relevant]
    report = paired_test(tmp_path, examples, "oracle", "original", ("ndcg@10", "recall@100"))
    for measure, row in report.items():
        assert row["queries"] == means["oracle"]["queries"] == 60
        assert row["difference"] == pytest.approx(means["oracle"][measure] - means["original"][measure])
        assert row["randomization_p"] < 0.001 and row["t_test_p"] < 0.001  # the oracle wins on most queries
    same = paired_test(tmp_path, examples, "original", "original", ("ndcg@10",))["ndcg@10"]
    assert same["difference"] == 0.0 and same["randomization_p"] == same["t_test_p"] == 1.0
    with pytest.raises(DeepRetrievalError, match="no run of policy 'prf'"):
        paired_test(tmp_path, examples, "oracle", "prf", ("ndcg@10",))


class CompletionPolicy:
    """A model policy's outputs without a model: each example's completion read as evaluation reads it."""

    name = "completions"

    def __init__(self, completions, searcher, mode):
        from deepretrieval.prompts import PromptSettings
        from deepretrieval.tasks import get_task

        self.completions, self.searcher = completions, searcher
        self.task = get_task("retrieval")
        self.settings = PromptSettings(variant="direct", mode=mode, context_docs=0)

    def generate(self, examples):
        from deepretrieval.tasks import propose_output

        return [propose_output(self.task, self.completions[e.id], e, self.settings, self.searcher) for e in examples]

    def describe(self):
        return {"policy": self.name}


@pytest.mark.parametrize("mode", ["rewrite", "expand"])
def test_answers_with_nothing_to_search_are_marked_and_counted(small_collection, searcher, tmp_path, mode):
    """Two of four answers give nothing to search ('!!!', only stopwords): the runs file marks them, and the
    statistics report half of the answers as fallbacks."""
    completions = {"q1": 'heart attack"}</answer>', "q2": '!!!"}</answer>', "q3": 'the of and"}</answer>'}
    completions["q4"] = 'myocardial infarction mortality"}</answer>'
    policy = CompletionPolicy(completions, searcher, mode)
    results = evaluate(small_collection, "all", [policy], searcher, tmp_path, SETTINGS)
    lines = {x["id"]: x for x in map(json.loads, results[0].runs_path.read_text().splitlines())}
    assert [qid for qid, x in lines.items() if x.get("fallback")] == ["q2", "q3"]
    # rewrite sends nothing for them, expand sends the user's own query.
    expected = {"rewrite": "", "expand": small_collection.examples[1].question}
    assert lines["q2"]["query"].strip() == expected[mode]
    top = json.loads((tmp_path / "metrics.json").read_text())
    assert top["statistics"]["fallback_share"] == 0.5
