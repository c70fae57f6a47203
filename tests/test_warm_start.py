"""Warm start: SFT on answers read off the judgments (select-rm3), then GRPO, with the tiny random model."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from deepretrieval.data import load_collection
from deepretrieval.errors import DeepRetrievalError
from deepretrieval.models import load_model_and_tokenizer
from deepretrieval.prompts import PromptSettings
from deepretrieval.recipe import TrainRecipe
from deepretrieval.tasks import get_task, render_prompts
from deepretrieval.train import train
from deepretrieval.warm_start import WARM_START_DIR, demonstrations, warm_start

TASK = get_task("retrieval")
SELECT = PromptSettings(mode="select-rm3", style="short")


@pytest.fixture(scope="module")
def demo():
    full = load_collection("demo")
    train_ids = [e.id for e in full.split("train") if e.relevant][:24]  # a short warm start
    collection = replace(full, splits={**full.splits, "train": train_ids})
    backend = TASK.backend(collection, {})
    examples = TASK.context(backend, collection, SELECT)([e for e in collection.split("train") if e.relevant])
    return collection, backend, examples


def test_the_select_rm3_demonstration_names_the_judged_relevant_results_and_parses_back(demo):
    _, _, examples = demo
    answers = []
    for example in examples:
        docs = example.meta["selection"].docs
        text = TASK.demonstration(example, SELECT)
        relevant = [n for n, d in enumerate(docs, 1) if example.targets.get(d.doc_id, 0) > 0]
        assert text == " ".join(map(str, relevant))
        completion = TASK.completion(text, "direct")
        parsed = TASK.parse(completion, SELECT)
        # no relevant result shown: the empty answer, which runs plain RM3
        assert (parsed.query, parsed.format_ok) == (text, True) if text else parsed.reason == "empty_query"
        assert example.meta["selection"].choice(text) == tuple(n - 1 for n in relevant)
        answers.append(text)
    assert any(answers) and len(set(answers)) > 1  # the demo's judgments pick different results per need
    for mode in ("expand", "feedback", "expand-rm3"):
        assert TASK.demonstration(examples[0], PromptSettings(mode=mode)) is None
    with pytest.raises(DeepRetrievalError, match="direct"):
        TASK.completion("1 2", "reasoning")


def _demonstration_loss(model, tokenizer, prompts, completions) -> float:
    """Mean negative log-likelihood of the completions' tokens given their prompts."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for prompt, completion in zip(prompts, completions, strict=True):
            head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            tail = tokenizer(completion, add_special_tokens=False)["input_ids"]
            logits = model(torch.tensor([head + tail])).logits[0, len(head) - 1 : -1]
            nll = torch.nn.functional.cross_entropy(logits, torch.tensor(tail), reduction="sum")
            total, count = total + float(nll), count + len(tail)
    return total / count


def test_warm_start_makes_the_demonstrations_likelier_then_grpo_trains_from_it(tmp_path, demo, monkeypatch):
    collection, _, examples = demo
    recipe = TrainRecipe(
        data="demo",
        model="tiny-random",
        mode="select-rm3",
        prompt_style="short",
        reward="ndcg-lenient",
        warm_start_epochs=3,
        warm_start_learning_rate=5e-3,
        warm_start_batch_size=4,
        max_steps=1,
        save_steps=1,
        prompts_per_step=1,
        num_generations=2,
        max_completion_length=8,
        output_dir=str(tmp_path / "run"),
    )
    result = train(recipe, collection=collection)
    assert result.steps == 1 and (result.final_dir / "policy.json").exists()
    folder = tmp_path / "run" / WARM_START_DIR
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["examples"] == len(examples) and summary["recipe"]["warm_start_epochs"] == 3
    assert json.loads((folder / "policy.json").read_text())["mode"] == "select-rm3"  # evaluable as a policy

    kept, completions = demonstrations(TASK, examples, recipe)
    model = warm_start(recipe, TASK, examples, None, None, tmp_path / "run")  # reused, as a rerun would
    assert model.config._name_or_path == str(folder)  # TRL's KL reference (beta > 0) is the warm start
    before, tokenizer = load_model_and_tokenizer("tiny-random")
    after, _ = load_model_and_tokenizer(str(folder))
    prompts = render_prompts(TASK, kept, recipe.prompt_settings(), tokenizer, shown=True)
    assert _demonstration_loss(after, tokenizer, prompts, completions) < 0.7 * _demonstration_loss(
        before, tokenizer, prompts, completions
    )

    # The same recipe again reuses the saved warm start; another one trains its own.
    import deepretrieval.warm_start as module

    def refuse(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(module, "_sft_trainer", refuse)
    model = warm_start(recipe, TASK, examples, before, tokenizer, tmp_path / "run")
    assert _demonstration_loss(model, tokenizer, prompts[:3], completions[:3]) == pytest.approx(
        _demonstration_loss(after, tokenizer, prompts[:3], completions[:3])
    )
    with pytest.raises(AssertionError, match="trained again"):
        warm_start(
            recipe.model_copy(update={"warm_start_epochs": 1}), TASK, examples, before, tokenizer, tmp_path / "run"
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "expand"}, "'expand' mode has no demonstrations"),
        ({"lora": True}, "set lora: false"),
        ({"variant": "reasoning"}, "use variant: direct"),
    ],
)
def test_a_warm_start_it_cannot_do_is_refused_before_training(tmp_path, demo, changes, message):
    collection, _, _ = demo
    recipe = TrainRecipe(
        data="demo",
        model="tiny-random",
        mode="select-rm3",
        warm_start_epochs=1,
        max_steps=1,
        output_dir=str(tmp_path / "run"),
    ).model_copy(update=changes)
    with pytest.raises(DeepRetrievalError, match=message):
        train(recipe, collection=collection)
    assert not (tmp_path / "run" / WARM_START_DIR / "summary.json").exists()
