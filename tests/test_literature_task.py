"""The literature family on the task seam: PICO -> Boolean query -> offline engine with a date window."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from deepretrieval.cli import app
from deepretrieval.data import load_collection
from deepretrieval.prompts import PromptSettings
from deepretrieval.rewards import RewardConfig
from deepretrieval.search.boolean import BooleanIndex, BooleanRequest
from deepretrieval.search.pubmed_syntax import MAX_EXPANSIONS
from deepretrieval.tasks import TaskReward, get_task
from deepretrieval.tasks.literature import pico_boolean
from deepretrieval.types import Document

runner = CliRunner()
TASK = get_task("literature")
DIRECT = PromptSettings(variant="direct", mode="rewrite", context_docs=0)
REASONING = PromptSettings(variant="reasoning", mode="rewrite", context_docs=0)


@pytest.fixture(scope="module")
def collection():
    return load_collection("literature-demo")


@pytest.fixture(scope="module")
def backend(collection, tmp_path_factory):
    return TASK.backend(collection, {}, index=tmp_path_factory.mktemp("lit") / "index")


def test_eval_writes_the_report_for_both_baselines_and_the_oracle_ceiling(tmp_path):
    out = tmp_path / "e"
    args = ["eval", "--data", "literature-demo", "--task", "literature", "--out", str(out)]
    result = runner.invoke(app, [*args, "--policy", "original", "--policy", "pico-boolean", "--policy", "oracle"])
    assert result.exit_code == 0, result.output
    policies = json.loads((out / "metrics.json").read_text())["policies"]
    assert set(policies) == {"original", "pico-boolean", "oracle"}
    assert policies["oracle"]["recall@100"] == pytest.approx(1.0)  # the generator's query finds every study
    assert policies["original"]["recall@100"] < policies["oracle"]["recall@100"]
    assert "total_median" in policies["pico-boolean"]["statistics"]
    assert "| pico-boolean |" in (out / "report.md").read_text()
    line = json.loads((out / "policies" / "oracle" / "runs.jsonl").read_text().splitlines()[0])
    assert "[published by " in line["query"] and line["total"] >= len(line["ranked"][:1])


def test_the_review_date_excludes_later_studies(collection, backend):
    example = next(e for e in collection.split("test") if e.meta["later_studies"])
    action = TASK.query_action(example.meta["oracle_query"], example)
    dated = TASK.execute([action], backend, 1000)[0].ids
    undated = TASK.execute([BooleanRequest(action.query)], backend, 1000)[0].ids
    later = set(example.meta["later_studies"])
    assert later <= set(undated) and not later & set(dated)
    assert set(example.relevant) <= set(dated)


@pytest.mark.parametrize(
    ("completion", "settings", "query", "ok"),
    [
        (
            '(aspirin[tiab] OR "acetylsalicylic acid"[tiab]) AND stroke[mh]</answer>',
            DIRECT,
            '(aspirin[tiab] OR "acetylsalicylic acid"[tiab]) AND stroke[mh]',
            True,
        ),
        ('{"query": "aspirin AND \\"heart attack\\""}</answer>', DIRECT, 'aspirin AND "heart attack"', True),
        ("aspirin AND stroke</ans", DIRECT, "aspirin AND stroke", True),  # stopped at the closing tag's first token
        ("aspirin", DIRECT, None, False),  # never closed
        ("</answer>", DIRECT, None, False),
        ("plan</think><answer>aspirin</answer>", REASONING, "aspirin", True),
        ("<answer>aspirin</answer>", REASONING, "aspirin", False),
    ],
)
def test_answers_are_the_boolean_query_raw_or_as_deepretrieval_json(completion, settings, query, ok):
    parsed = TASK.parse(completion, settings)
    assert (parsed.query, parsed.format_ok) == (query, ok)


def test_a_query_the_engine_rejects_is_a_format_error_never_a_failure(collection, backend):
    examples = collection.split("train")[:2]
    config = replace(TASK.presets["deepretrieval-recall"], k=100)
    reward = TaskReward(TASK, backend, examples, config, DIRECT)
    oracle = examples[0].meta["oracle_query"]
    good, unbalanced, tag = reward.score_batch(
        [f"{oracle}</answer>", "(aspirin OR</answer>", "aspirin[zz]</answer>"], [examples[0].id] * 3
    )
    assert good.total == pytest.approx(1.0 + 5.0) and good.format_ok
    for bad in (unbalanced, tag):
        assert bad.failure is None and bad.total == config.format_penalty and not bad.format_ok


@pytest.fixture(scope="module")
def wide_backend(collection):
    """The demo corpus and one more record, whose abstract holds more words beginning with ``inte`` than the
    engine lets a query's truncations expand to (and than tantivy lets a truncated phrase expand to)."""
    wide = Document("wide", "Heart intern", " ".join(f"inte{i:05d}" for i in range(MAX_EXPANSIONS + 600)))
    return BooleanIndex.build([*collection.documents, wide])


def test_a_query_that_expands_too_far_is_its_own_format_error_and_the_batch_is_scored(collection, wide_backend):
    examples = collection.split("train")[:2]
    config = replace(TASK.presets["deepretrieval-recall"], k=100)
    reward = TaskReward(TASK, wide_backend, examples, config, DIRECT, retries=0, backoff_seconds=0.0)
    good = {
        0: (f"{examples[0].meta['oracle_query']}</answer>", examples[0].id),
        2: (f"{pico_boolean(examples[1].meta['pico'])}</answer>", examples[1].id),
        3: (f"{examples[1].meta['oracle_query']}</answer>", examples[1].id),
        5: (f"{TASK.user_query(examples[0])}</answer>", examples[0].id),
    }
    bad = {1: '"heart inte*"</answer>', 4: "(aspirin OR inte*) AND stroke</answer>"}
    batch = [good[i] if i in good else (bad[i], examples[i % 2].id) for i in range(6)]
    results = reward.score_batch([c for c, _ in batch], [e for _, e in batch])
    for i, (completion, example_id) in good.items():
        assert results[i] == reward.score_batch([completion], [example_id])[0]  # as if scored alone
        assert results[i].failure is None and results[i].total is not None and results[i].format_ok
    assert len({results[i].total for i in good}) > 1  # real rewards, not one constant
    for i in bad:
        assert results[i].failure is None and not results[i].format_ok
        assert (results[i].total, results[i].reason) == (config.format_penalty, "rejected_by_backend")
    assert (reward.failed_batches, reward.failures_total) == (0, 0)


def test_an_engine_failure_still_fails_the_whole_batch_never_a_reward(collection, wide_backend, monkeypatch):
    def broken(*args):
        raise ValueError("An IO error occurred: 'segment gone'")

    monkeypatch.setattr(wide_backend, "_ranking", broken)
    example = collection.split("train")[0]
    config = replace(TASK.presets["deepretrieval-recall"], k=100)
    reward = TaskReward(TASK, wide_backend, [example], config, DIRECT, retries=0, backoff_seconds=0.0)
    completions = [f"{example.meta['oracle_query']}</answer>", '"heart inte*"</answer>', "(aspirin OR</answer>"]
    results = reward.score_batch(completions, [example.id] * 3)
    assert all(r.total is None and "failed while searching" in r.failure for r in results)
    assert (reward.failed_batches, reward.failures_total) == (1, 3)


def test_the_focused_preset_penalises_result_sets_far_larger_than_k(collection, backend):
    example = collection.split("train")[0]
    config = RewardConfig(metric="recall", k=10, oversize_factor=2.0, oversize_penalty=0.25)
    reward = TaskReward(TASK, backend, [example], config, DIRECT)
    narrow, broad = reward.score_batch(
        [f"{example.meta['oracle_query']}</answer>", f"({example.meta['oracle_query']}) OR trial*[tiab]</answer>"],
        [example.id] * 2,
    )
    assert broad.reason == "oversized_result" and narrow.reason == "ok"
    plain = replace(config, oversize_factor=None)
    unpenalised = TaskReward(TASK, backend, [example], plain, DIRECT).score_batch(
        [f"({example.meta['oracle_query']}) OR trial*[tiab]</answer>"], [example.id]
    )[0]
    assert broad.total == pytest.approx(unpenalised.total - 0.25)


def test_pico_boolean_is_population_or_ed_and_intervention_or_ed():
    from deepretrieval.tasks.literature import pico_boolean

    query = pico_boolean({"P": "Older people with a cold", "I": "Decongestants", "C": "", "O": "Living longer"})
    assert query == "(older[tiab] OR cold[tiab]) AND (decongestants[tiab])"


@pytest.mark.slow
def test_grpo_trains_on_the_literature_task(tmp_path):
    """A short GRPO run with the tiny random model, through the task seam, on the offline Boolean engine."""
    from deepretrieval.runs import read_log
    from deepretrieval.train import train

    from .conftest import tiny_literature_recipe

    result = train(tiny_literature_recipe(tmp_path / "run"))
    assert result.steps == 2
    log = [r for r in read_log(result.log_path) if "reward" in r]
    assert [r["step"] for r in log] == [1, 2]
    # A random model writes no valid query: every sample is scored (format penalty), none is a failure.
    assert all(r["literature/failures"] == 0 for r in log)
    assert not any(key.startswith("retrieval/") for r in log for key in r)  # the family's prefix, not retrieval's
    policy = json.loads((result.final_dir / "policy.json").read_text())
    assert (policy["task"], policy["backend"]) == ("literature", {})
    # Held-out selection: the start and the last step evaluated on dev by the family's first measure, a curve.
    assert [r["step"] for r in read_log(result.log_path) if "dev/recall@100" in r] == [0, 2]
    assert policy["selection"]["measure"] == "recall@100"
    assert (result.output_dir / "learning_curve.png").exists()
