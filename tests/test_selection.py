"""Held-out selection during training: dev evaluations beside the reward, RUN/final = the best on dev (the start
included), early stopping, and the dev split kept out of training. Real GRPO runs with the tiny random model."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import deepretrieval.train as train_module
from deepretrieval.data import load_collection
from deepretrieval.errors import DeepRetrievalError
from deepretrieval.recipe import TrainRecipe, load_recipe
from deepretrieval.runs import CURVE_FILE, read_log
from deepretrieval.selection import Evaluation, Selection
from deepretrieval.train import train


def recipe_for(output_dir, **fields) -> TrainRecipe:
    """Rewrite mode: an answer with nothing to search runs nothing (no fallback that could score)."""
    values = dict(
        data="demo",
        model="tiny-random",
        mode="rewrite",
        reward="recall-lenient",
        context_docs=0,
        max_steps=2,
        save_steps=1,
        eval_steps=1,
        eval_limit=6,
        prompts_per_step=1,
        num_generations=2,
        max_completion_length=6,
        learning_rate=5e-2,
        output_dir=str(output_dir),
    )
    return TrainRecipe(**(values | fields))


@pytest.fixture
def corrupted(monkeypatch):
    """Each GRPO step ends by zeroing every weight (before the dev evaluation of that step: the log callback runs
    first), so every later policy writes one token id 0 (end of text), an empty answer that searches nothing.
    Returns the weights at the start, snapshotted when training begins."""
    start: dict[str, torch.Tensor] = {}
    original = train_module.log_callback

    def log_callback(path):
        callback = original(path)
        begin = callback.on_train_begin

        def on_train_begin(args, state, control, model=None, **kwargs):
            if state.global_step == 0:
                start.update({k: v.detach().clone() for k, v in model.state_dict().items()})
            return begin(args, state, control, model=model, **kwargs)

        def on_step_end(args, state, control, model=None, **kwargs):
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.zero_()

        callback.on_train_begin, callback.on_step_end = on_train_begin, on_step_end
        return callback

    monkeypatch.setattr(train_module, "log_callback", log_callback)
    return start


def script_dev(monkeypatch, values: dict[int, float]) -> None:
    """The dev evaluations run as they do (the same code, on the dev queries), but report ``values[step]`` as
    ndcg@10: a random model scores 0 at every step, which would make every choice a tie."""
    import dataclasses

    import deepretrieval.selection as selection_module

    evaluate = selection_module.evaluate_policy

    def scripted(collection, split, examples, policy, *args, **kwargs):
        result = evaluate(collection, split, examples, policy, *args, **kwargs)
        step = int(policy.name.removeprefix("step-"))
        return dataclasses.replace(result, metrics={**result.metrics, "ndcg@10": values[step]})

    monkeypatch.setattr(selection_module, "evaluate_policy", scripted)


def weights_equal(folder, weights: dict[str, torch.Tensor]) -> bool:
    saved = load_file(str(folder / "model.safetensors"))
    return all(torch.equal(tensor, weights[name]) for name, tensor in saved.items() if name in weights)


@pytest.mark.slow
def test_final_is_the_best_dev_step_the_start_included_and_survives_a_resume(tmp_path, corrupted, monkeypatch):
    script_dev(monkeypatch, {0: 0.4, 1: 0.1, 2: 0.3, 3: 0.35})
    run = tmp_path / "run"
    result = train(recipe_for(run))
    assert result.steps == 2
    selection = json.loads((result.final_dir / "policy.json").read_text())["selection"]
    assert (selection["step"], selection["measure"], selection["split"]) == (0, "ndcg@10", "dev")
    assert (selection["value"], selection["start_value"], selection["last_value"]) == (0.4, 0.4, 0.3)
    assert (selection["last_step"], selection["evaluations"]) == (2, 3)
    assert weights_equal(result.final_dir, corrupted)
    last = json.loads((run / "last" / "policy.json").read_text())["selection"]
    assert (last["step"], last["value"], last["why"]) == (2, 0.3, "the last step")
    assert not weights_equal(run / "last", corrupted)
    # The log holds each dev evaluation beside the reward, with minutes; the curve is drawn.
    records = read_log(result.log_path)
    assert [(r["step"], r["dev/ndcg@10"]) for r in records if "dev/ndcg@10" in r] == [(0, 0.4), (1, 0.1), (2, 0.3)]
    assert all("minutes" in r and "dev/recall@100" in r for r in records if "dev/ndcg@10" in r)
    assert all("minutes" in r for r in records if "reward" in r)
    assert (run / CURVE_FILE).stat().st_size > 0
    # Resumed further, the best so far (step 0, stored in RUN/best) is still what final ships.
    resumed = train(recipe_for(run, max_steps=3), resume=True)
    assert resumed.steps == 3
    selection = json.loads((resumed.final_dir / "policy.json").read_text())["selection"]
    assert (selection["step"], selection["last_step"], selection["evaluations"]) == (0, 3, 4)
    assert weights_equal(resumed.final_dir, corrupted)


@pytest.mark.slow
def test_final_is_a_middle_step_when_it_is_the_best(tmp_path, monkeypatch):
    script_dev(monkeypatch, {0: 0.1, 1: 0.2, 2: 0.5, 3: 0.3})
    run = tmp_path / "run"
    result = train(recipe_for(run, max_steps=3))
    assert json.loads((result.final_dir / "policy.json").read_text())["selection"]["step"] == 2
    assert weights_equal(result.final_dir, load_file(str(run / "checkpoint-2" / "model.safetensors")))
    assert not weights_equal(result.final_dir, load_file(str(run / "last" / "model.safetensors")))


@pytest.mark.slow
def test_early_stopping_after_patience_evaluations_without_gain(tmp_path, corrupted, monkeypatch):
    script_dev(monkeypatch, {0: 0.4, 1: 0.1, 2: 0.4})  # a tie is no gain
    result = train(recipe_for(tmp_path / "run", max_steps=6, early_stopping_patience=2))
    assert result.steps == 2  # steps 1 and 2 no better than the start
    last = json.loads((tmp_path / "run" / "last" / "policy.json").read_text())["selection"]
    assert last["why"] == "the last step (stopped early)"
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
    assert json.loads((result.final_dir / "policy.json").read_text())["selection"]["step"] == 0


@pytest.mark.slow
def test_dev_queries_never_reach_training(tmp_path, monkeypatch):
    collection = load_collection("demo")
    train_ids, dev_ids = {e.id for e in collection.split("train")}, {e.id for e in collection.split("dev")}
    assert train_ids and dev_ids and not train_ids & dev_ids
    seen: dict[str, set] = {"dataset": set(), "reward": set(), "scored": set()}
    build, score = train_module.build_dataset, train_module.TaskReward.score_with_verdicts

    def build_dataset(task, examples, *args, **kwargs):
        dataset = build(task, examples, *args, **kwargs)
        seen["dataset"] |= set(dataset["example_id"])
        return dataset

    def score_with_verdicts(self, completions, example_ids):
        seen["reward"] |= set(self.examples)
        seen["scored"] |= set(example_ids)
        return score(self, completions, example_ids)

    monkeypatch.setattr(train_module, "build_dataset", build_dataset)
    monkeypatch.setattr(train_module.TaskReward, "score_with_verdicts", score_with_verdicts)
    result = train(recipe_for(tmp_path / "run", eval_limit=None, prompts_per_step=2), collection=collection)
    assert seen["scored"] and all(seen.values())
    for ids in seen.values():
        assert ids <= train_ids and not ids & dev_ids
    # ... while the dev evaluations ran on the dev queries (all of them: no eval_limit).
    evaluated = [json.loads(line)["id"] for line in (result.output_dir / "dev/policies/step-0/runs.jsonl").open()]
    assert set(evaluated) == {e.id for e in collection.split("dev") if e.targets}


def test_selection_keeps_the_earliest_of_equals_and_counts_evaluations_without_gain():
    selection = Selection("ndcg@10")
    assert selection.add(Evaluation(0, 0.3))
    assert not selection.add(Evaluation(8, 0.3))  # a tie keeps the earlier step
    assert selection.add(Evaluation(16, 0.31))
    assert not selection.add(Evaluation(24, 0.2))
    assert (selection.best, selection.without_gain()) == (Evaluation(16, 0.31), 1)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"eval_split": "train"}, "eval_split"),
        ({"split": "dev"}, "eval_split"),
        ({"eval_measure": "map"}, "eval_measure"),
        ({"task": "literature", "data": "literature-demo", "eval_measure": "ndcg@1000"}, "eval_measure"),
    ],
)
def test_a_bad_selection_setting_is_one_line_naming_its_field(overrides, field):
    with pytest.raises(DeepRetrievalError) as error:
        load_recipe(None, overrides)
    assert f"field '{field}'" in str(error.value) and "\n" not in str(error.value)


def test_selection_defaults_are_the_tasks_first_measure_and_save_steps():
    assert load_recipe(None, {"save_steps": 5}).eval_steps == 5
    assert load_recipe(None, {}).eval_measure == "ndcg@10"
    assert load_recipe(None, {"task": "literature", "data": "literature-demo"}).eval_measure == "recall@100"
    # Held-out evaluation off: the training split may be anything.
    assert load_recipe(None, {"eval_steps": 0, "split": "dev"}).split == "dev"


def test_a_collection_without_the_held_out_split_is_one_line_naming_the_field(tmp_path, small_collection):
    """Refused before any model loads: small_collection has train and test splits only."""
    with pytest.raises(DeepRetrievalError, match="^field 'eval_split': 'small' has no split 'dev'.*eval_steps: 0"):
        train(recipe_for(tmp_path / "run"), collection=small_collection)


@pytest.mark.slow
def test_a_time_budget_stops_training_and_the_stopping_step_is_evaluated(tmp_path, monkeypatch):
    """A fake clock one minute further at each reading: begun at minute 0, step 1 ends at minute 1, step 2 at
    minute 2 -- past the 1.5-minute budget, so training stops there although max_steps is 6, and step 2 gets
    the last dev evaluation although eval_steps (3) would not have chosen it."""
    readings = iter(range(0, 6000, 60))
    monkeypatch.setattr(train_module, "time", type("Clock", (), {"monotonic": staticmethod(lambda: next(readings))}))
    script_dev(monkeypatch, {0: 0.1, 2: 0.2})
    result = train(recipe_for(tmp_path / "run", max_steps=6, eval_steps=3, max_minutes=1.5))
    assert result.steps == 2
    records = read_log(result.log_path)
    assert [r["step"] for r in records if "dev/ndcg@10" in r] == [0, 2]
    assert json.loads((result.final_dir / "policy.json").read_text())["selection"]["step"] == 2
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
