"""Warm start: supervised fine-tuning on answers built from the train split's judgments, before GRPO.

GRPO learns from one reward per completion; where a mode's right answer can be read off the judgments
(select-rm3: the numbers of the shown results judged relevant), a few epochs of TRL's ``SFTTrainer`` on
those answers give the policy a dense signal first (a cold start, as R1-style pipelines use), and GRPO
then refines it on the reward. The warm-started model is saved as a policy folder of its own
(``OUTPUT_DIR/warm-start``, with ``summary.json`` written last), so that it can be evaluated beside the
final policy and a rerun of the same recipe reuses it instead of training it again. With ``beta > 0``
GRPO's KL term keeps the policy near the warm-started model (its reference), not near the base model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import DeepRetrievalError
from .recipe import TrainRecipe
from .runs import save_policy
from .tasks import Task, render_prompts
from .types import Collection, Example

log = logging.getLogger(__name__)

WARM_START_DIR = "warm-start"
SUMMARY_FILE = "summary.json"
# Recipe fields that decide the warm-started model: a saved one is reused only when all of them match.
_DECIDING = (
    "data",
    "corpus",
    "split",
    "seed",
    "task",
    "backend",
    "variant",
    "mode",
    "context_docs",
    "prompt_style",
    "model",
    "warm_start_epochs",
    "warm_start_learning_rate",
    "warm_start_batch_size",
)


def demonstrations(
    task: Task, examples: Sequence[Example], recipe: TrainRecipe, collection: Collection | None = None
) -> tuple[list[Example], list[str]]:
    """The examples with a demonstration and each one's completion (the examples carry their context;
    ``collection`` holds the judged documents)."""
    settings = recipe.prompt_settings()
    kept, completions = [], []
    for example in examples:
        text = task.demonstration(example, settings, collection)
        if text is not None:
            kept.append(example)
            completions.append(task.completion(text, settings.variant))
    if not kept:
        raise DeepRetrievalError(
            f"warm_start_epochs: the {task.name} task's {settings.mode!r} mode has no demonstrations "
            "(answers read off the judgments); those that have them: retrieval select-rm3, literature rewrite "
            "(with subject headings on the included studies), sql rewrite (the gold SQL)"
        )
    return kept, completions


def warm_start(
    recipe: TrainRecipe,
    task: Task,
    examples: Sequence[Example],
    model: Any,
    tokenizer: Any,
    output_dir: Path,
    collection: Collection | None = None,
) -> Any:
    """The model after ``recipe.warm_start_epochs`` of SFT on the demonstrations (or the saved warm start of
    the same recipe, loaded). ``examples`` carry the context their prompts show."""
    from .distributed import is_main, wait_for_everyone
    from .models import load_model_and_tokenizer

    if recipe.lora:
        raise DeepRetrievalError("warm_start_epochs: a warm start fine-tunes the whole model; set lora: false")
    folder = output_dir / WARM_START_DIR
    settings = {name: getattr(recipe, name) for name in _DECIDING}
    saved = read_summary(folder)
    if saved is not None and saved.get("recipe") == settings:
        log.info("warm start: reusing %s", folder)
        return load_model_and_tokenizer(str(folder))[0]
    kept, completions = demonstrations(task, examples, recipe, collection)
    prompts = render_prompts(task, kept, recipe.prompt_settings(), tokenizer, shown=True)
    (folder / SUMMARY_FILE).unlink(missing_ok=True)  # a torn or stale folder is rewritten, never reused
    started = time.perf_counter()
    trainer = _sft_trainer(recipe, model, tokenizer, prompts, completions, folder)
    result = trainer.train()
    seconds = time.perf_counter() - started
    if not is_main():  # under accelerate launch: the main process saves it, every process loads it
        wait_for_everyone()
        return load_model_and_tokenizer(str(folder))[0]
    save_policy(trainer.model, tokenizer, folder, recipe)
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    summary = {
        "recipe": settings,
        "examples": len(kept),
        "empty_answers": sum(1 for c in completions if c.startswith('"')),
        "steps": trainer.state.global_step,
        "seconds": round(seconds, 1),
        "train_loss": round(float(result.training_loss), 4),
        "losses": [round(float(x), 4) for x in losses],
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    wait_for_everyone()
    # Loaded from the folder, so that GRPO's KL reference (beta > 0; TRL loads it from the model's config
    # path) is the warm-started model, not the base model the run started from.
    return load_model_and_tokenizer(str(folder))[0]


def read_summary(folder: Path) -> dict | None:
    """A complete warm start's summary (None: there is none, or it was cut short)."""
    try:
        return json.loads((folder / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None


def _sft_trainer(recipe: TrainRecipe, model: Any, tokenizer: Any, prompts: list[str], completions: list[str], folder):
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(folder / "trainer"),
        num_train_epochs=recipe.warm_start_epochs,
        per_device_train_batch_size=recipe.warm_start_batch_size,
        learning_rate=recipe.warm_start_learning_rate,
        lr_scheduler_type="constant",
        completion_only_loss=True,  # the prompt is given, not learned
        max_length=None,  # never cut a prompt: the numbered results are what the answer refers to
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        bf16=recipe.bf16,
        use_cpu=not torch.cuda.is_available(),
        seed=recipe.seed,
        data_seed=recipe.seed,
        dataloader_pin_memory=False,
        activation_checkpointing=recipe.activation_checkpointing,
    )
    dataset = Dataset.from_dict({"prompt": prompts, "completion": completions})
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
