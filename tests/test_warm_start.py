"""Warm start: SFT on answers read off the judgments (select-rm3), then GRPO, with the tiny random model."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from deepretrieval.data import load_collection
from deepretrieval.errors import DeepRetrievalError
from deepretrieval.feedback import NONE_ANSWER, FeedbackDoc, FeedbackSettings, Selection
from deepretrieval.models import load_model_and_tokenizer
from deepretrieval.prompts import PromptSettings
from deepretrieval.recipe import TrainRecipe
from deepretrieval.tasks import get_task, render_prompts
from deepretrieval.train import train
from deepretrieval.types import Example
from deepretrieval.warm_start import WARM_START_DIR, _sft_trainer, demonstrations, warm_start

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


def hand_made_selection(shown: list[str]) -> Selection:
    docs = tuple(FeedbackDoc(d, 1.0, ((d, 1),), f"snippet of {d}") for d in shown)
    return Selection(original=(("kidney", 1.0),), docs=docs, settings=FeedbackSettings())


def test_the_select_rm3_demonstration_names_the_judged_relevant_results_by_hand():
    # Shown in this order: d7, d3, d9, d1. Judged: d3 (2) and d1 (1) relevant, d9 (0) not; d5 relevant but
    # not shown. So the answer names results 2 and 4.
    targets = {"d3": 2, "d1": 1, "d9": 0, "d5": 1}
    example = Example("q", "kidney stones", targets, meta={"selection": hand_made_selection(["d7", "d3", "d9", "d1"])})
    assert TASK.demonstration(example, SELECT) == "2 4"
    completion = TASK.completion("2 4", "direct")
    assert completion == '2 4"}</answer>'  # after the prompt's answer prefix <answer>{"query": "
    parsed = TASK.parse(completion, SELECT)
    assert (parsed.query, parsed.format_ok) == ("2 4", True)
    assert example.meta["selection"].choice(parsed.query) == (1, 3)  # 0-based positions of d3 and d1
    # None of the shown results relevant: the "none" answer (plain RM3), never the empty one.
    nothing = Example("q", "kidney stones", targets, meta={"selection": hand_made_selection(["d7", "d9"])})
    assert TASK.demonstration(nothing, SELECT) == NONE_ANSWER
    for mode in ("expand", "feedback", "expand-rm3"):
        assert TASK.demonstration(example, PromptSettings(mode=mode)) is None
    with pytest.raises(DeepRetrievalError, match="direct"):
        TASK.completion("1 2", "reasoning")


def test_demonstrations_on_the_demo_differ_between_needs(demo):
    _, _, examples = demo
    answers = [TASK.demonstration(e, SELECT) for e in examples]
    assert len(set(answers)) > 1 and any(a != NONE_ANSWER for a in answers)


def test_sft_learns_the_completion_tokens_only(tmp_path):
    """The warm start's SFT data, checked by hand against the tokenizer: the prompt's tokens are masked out of
    the labels, the completion's tokens and the end-of-turn token TRL appends are learned. And the loss SFT
    logs for its first step is the untrained model's mean NLL of exactly those tokens, computed apart with
    torch's cross_entropy (a prompt token in the loss would change it)."""
    import torch

    model, tokenizer = load_model_and_tokenizer("tiny-random")
    prompts = ['Results: 1. kidney stones 2. heart attack\n<answer>{"query": "', "Pick the relevant ones: "]
    completions = ['1"}</answer>', '1 2"}</answer>']
    recipe = TrainRecipe(
        data="demo",
        model="tiny-random",
        mode="select-rm3",
        warm_start_epochs=1,
        warm_start_batch_size=2,  # one step over both: its loss is the mean over both completions' tokens
        warm_start_learning_rate=1e-3,
        output_dir=str(tmp_path / "run"),
    )
    trainer = _sft_trainer(recipe, model, tokenizer, prompts, completions, tmp_path / "sft")
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    total, count = 0.0, 0
    for row, prompt, completion in zip(range(2), prompts, completions, strict=True):
        head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        tail = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        real = batch["attention_mask"][row].bool()
        assert batch["input_ids"][row][real].tolist() == head + tail
        assert batch["labels"][row][real].tolist() == [-100] * len(head) + tail
        with torch.no_grad():
            logits = model(torch.tensor([head + tail])).logits[0, len(head) - 1 : -1]
        total += float(torch.nn.functional.cross_entropy(logits, torch.tensor(tail), reduction="sum"))
        count += len(tail)
    trainer.train()
    first_loss = next(r["loss"] for r in trainer.state.log_history if "loss" in r)
    # The prompt's tokens in the loss would move it by 0.02 here: 200 times the tolerance (the Trainer may
    # round what it logs to 4 decimals).
    assert first_loss == pytest.approx(total / count, abs=1e-4)


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
