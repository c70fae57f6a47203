"""Real GRPO training (TRL) with the tiny random model against the real bm25s Searcher."""

from __future__ import annotations

import pytest

from deepretrieval.errors import DeepRetrievalError, SearchFailure
from deepretrieval.recipe import TrainRecipe
from deepretrieval.rewards import PRESETS
from deepretrieval.runs import read_log
from deepretrieval.search.bm25 import BM25Searcher, BM25Settings
from deepretrieval.tasks import get_task
from deepretrieval.train import train

from .conftest import retrieval_reward


class FlakySearcher:
    """Wraps a real searcher; fails the first ``failures`` calls like an unreachable backend."""

    def __init__(self, inner, failures: int) -> None:
        self.inner, self.failures, self.calls = inner, failures, []

    def search(self, queries, k):
        self.calls.append(list(queries))
        if self.failures > 0:
            self.failures -= 1
            raise SearchFailure("backend unreachable")
        return self.inner.search(queries, k)


@pytest.fixture
def searcher(small_collection):
    return BM25Searcher.build(small_collection.documents, BM25Settings())


def answer(query: str) -> str:
    """A completion in format: the prompt already ends with the direct variant's `<answer>{"query": "`."""
    return f'{query}"}}</answer>'


def test_reward_batch_is_one_deduplicated_search(small_collection, searcher):
    flaky = FlakySearcher(searcher, failures=0)
    reward = retrieval_reward(flaky, small_collection.examples, PRESETS["recall"])
    completions = [
        answer("myocardial infarction"),
        answer("myocardial infarction"),
        answer("heart"),
        "garbage",
    ]
    totals = reward([""] * 4, completions, example_id=["q1", "q1", "q1", "q1"])
    assert len(flaky.calls) == 1
    assert sorted(flaky.calls[0]) == ["heart", "myocardial infarction"]
    assert totals[0] == totals[1] > totals[2]
    assert totals[3] < 0  # format penalty, not a retrieval score


def test_search_failure_is_never_a_reward_and_stops_when_it_persists(small_collection, searcher):
    flaky = FlakySearcher(searcher, failures=10)
    reward = retrieval_reward(
        flaky,
        small_collection.examples,
        PRESETS["recall"],
        retries=1,
        backoff_seconds=0.0,
        max_failed_batches=2,
    )
    assert reward([""], [answer("hypertension")], example_id=["q2"]) == [None]
    with pytest.raises(SearchFailure, match="kept failing"):
        reward([""], [answer("hypertension")], example_id=["q2"])


def test_transient_failure_is_retried(small_collection, searcher):
    flaky = FlakySearcher(searcher, failures=1)
    reward = retrieval_reward(flaky, small_collection.examples, PRESETS["recall"], retries=2, backoff_seconds=0.0)
    assert reward([""], [answer("hypertension")], example_id=["q2"]) == [pytest.approx(PRESETS["recall"].scale)]
    assert len(flaky.calls) == 2


def test_relative_reward_uses_the_original_query(small_collection, searcher):
    reward = retrieval_reward(searcher, small_collection.examples, PRESETS["recall-gain"])
    same = reward([""], [answer("kidney stones")], example_id=["q3"])[0]
    assert same == pytest.approx(0.0)


@pytest.mark.slow
def test_grpo_trains_checkpoints_and_resumes(tmp_path):
    recipe = TrainRecipe(
        data="demo",
        model="tiny-random",
        mode="expand",
        reward="recall-lenient",
        max_steps=2,
        save_steps=2,
        prompts_per_step=2,
        num_generations=4,
        max_completion_length=12,
        learning_rate=1e-3,
        output_dir=str(tmp_path / "run"),
    )
    result = train(recipe)
    assert result.steps == 2
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
    assert (result.final_dir / "policy.json").exists()
    log = [r for r in read_log(result.log_path) if "reward" in r]
    assert [r["step"] for r in log] == [1, 2]
    for key in (
        "reward",
        "reward_std",
        "retrieval/empty_ratio",
        "retrieval/format_error_ratio",
        "retrieval/failures",
    ):
        assert all(key in r for r in log), key
    # A random model often writes nothing searchable; whenever something was searched, its metric is logged.
    searched = [r for r in log if r["retrieval/empty_ratio"] < 1]
    assert all("retrieval/metric" in r and "retrieval/query_tokens" in r for r in searched)
    with pytest.raises(DeepRetrievalError, match="already holds a run"):
        train(recipe)
    resumed = train(recipe.model_copy(update={"max_steps": 3}), resume=True)
    assert resumed.steps == 3
    log = [r for r in read_log(result.log_path) if "reward" in r]
    assert [r["step"] for r in log] == [1, 2, 3]


def test_resume_without_checkpoint_is_refused(tmp_path):
    recipe = TrainRecipe(data="demo", model="tiny-random", output_dir=str(tmp_path / "none"))
    with pytest.raises(DeepRetrievalError, match="no checkpoint"):
        train(recipe, resume=True)


def test_a_trained_run_is_a_policy_for_eval(tmp_path):
    """The run folder alone tells eval how to prompt the model (policy.json): mode and variant round-trip."""
    from deepretrieval.data import load_collection
    from deepretrieval.evaluate import EvalSettings, evaluate
    from deepretrieval.policies import make_policy

    recipe = TrainRecipe(
        data="demo",
        model="tiny-random",
        mode="expand",
        reward="recall-lenient",
        max_steps=1,
        save_steps=1,
        prompts_per_step=1,
        num_generations=2,
        max_completion_length=6,
        output_dir=str(tmp_path / "run"),
    )
    train(recipe)
    collection = load_collection("demo")
    searcher = BM25Searcher.build(collection.documents)
    policy = make_policy(str(tmp_path / "run"), task=get_task("retrieval"), backend=searcher, collection=collection)
    assert policy.describe()["mode"] == "expand"
    assert policy.describe()["context_docs"] == recipe.context_docs == 3
    results = evaluate(collection, "test", [policy], searcher, tmp_path / "eval", EvalSettings(batch_size=30))
    lines = results[0].runs_path.read_text().splitlines()
    assert len(lines) == len(collection.split("test"))


@pytest.mark.parametrize("mode", ["rewrite", "expand", "feedback", "select-rm3"])
@pytest.mark.parametrize("variant", ["direct", "reasoning"])
def test_training_prompts_are_the_prompts_evaluation_sends(tmp_path, variant, mode):
    """The training dataset holds exactly what eval gives the trained policy: context, answer prefix and all."""
    from deepretrieval.data import load_collection
    from deepretrieval.models import load_model_and_tokenizer
    from deepretrieval.policies import make_policy
    from deepretrieval.prompts import assistant_prefix
    from deepretrieval.runs import save_policy
    from deepretrieval.train import build_dataset

    collection = load_collection("demo")
    searcher = BM25Searcher.build(collection.documents)
    examples = collection.split("train")[:5]
    recipe = TrainRecipe(data="demo", model="tiny-random", variant=variant, mode=mode, context_docs=2)
    model, tokenizer = load_model_and_tokenizer("tiny-random")
    context = get_task("retrieval").context(searcher, collection, recipe.prompt_settings())
    trained_on = build_dataset(get_task("retrieval"), examples, tokenizer, recipe, context)["prompt"]
    run = save_policy(model, tokenizer, tmp_path / "run" / "final", recipe)
    policy = make_policy(str(run.parent), task=get_task("retrieval"), backend=searcher, collection=collection)
    sent = policy.prompts(examples)
    assert trained_on == sent
    assert all(p.endswith(assistant_prefix(variant)) for p in sent)
    assert all(("Top search results for it:" in p) == (mode != "select-rm3") for p in sent)
    assert all(("Candidate terms:" in p) == (mode == "feedback") for p in sent)
    assert all(("\n10. " in p) == (mode == "select-rm3") for p in sent)  # the numbered feedback documents


def test_queries_without_a_relevant_document_are_left_out_of_training(small_collection):
    from dataclasses import replace

    from deepretrieval.train import trainable

    examples = [*small_collection.examples, replace(small_collection.examples[0], id="q9", targets={"d6": 0})]
    examples.append(replace(small_collection.examples[0], id="q10", targets={}))
    kept, left_out = trainable(examples)
    assert [e.id for e in kept] == ["q1", "q2", "q3", "q4"]
    assert left_out == 2


@pytest.mark.slow
def test_lora_run_merges_evaluates_and_resumes(tmp_path):
    """--lora: the final policy is a merged plain HF folder that loads and evaluates; a LoRA run resumes."""
    from deepretrieval.data import load_collection
    from deepretrieval.evaluate import EvalSettings, evaluate
    from deepretrieval.policies import make_policy

    recipe = TrainRecipe(
        data="demo",
        model="tiny-random",
        lora=True,
        lora_r=4,
        lora_alpha=8,
        max_steps=2,
        save_steps=1,
        prompts_per_step=1,
        num_generations=2,
        max_completion_length=6,
        learning_rate=1e-3,
        output_dir=str(tmp_path / "run"),
    )
    reported = []
    result = train(recipe, progress=lambda step, total, logs: reported.append((step, total, "reward" in logs)))
    assert [r for r in reported if r[2]] == [(1, 2, True), (2, 2, True)]  # the CLI's bar sees every step
    assert (tmp_path / "run" / "checkpoint-2" / "adapter_config.json").exists()  # checkpoints hold the adapter
    final = result.final_dir
    assert not (final / "adapter_config.json").exists()  # ... the final policy is merged
    assert any(final.glob("*.safetensors"))
    resumed = train(recipe.model_copy(update={"max_steps": 3}), resume=True)
    assert resumed.steps == 3
    assert [r["step"] for r in read_log(resumed.log_path) if "reward" in r] == [1, 2, 3]
    collection = load_collection("demo")
    searcher = BM25Searcher.build(collection.documents)
    policy = make_policy(str(tmp_path / "run"), task=get_task("retrieval"), backend=searcher, collection=collection)
    evaluated = evaluate(collection, "test", [policy], searcher, tmp_path / "eval", EvalSettings(batch_size=30))
    assert evaluated[0].metrics["queries"] == len(collection.split("test"))
