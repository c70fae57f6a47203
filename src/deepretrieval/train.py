"""GRPO training of a query-writing policy with TRL: the DeepRetrieval loop.

prompt (the task's messages, chat template) -> TRL samples completions -> the task reads each as an action
-> one batched, de-duplicated execution on the task's backend for the whole batch -> reward (the task's
presets) -> GRPO update. Each group's prompt is encoded once (``shared_prefix``, see ``shared_prefix``: TRL's
log-probs, gradients and samples, in less time). A warm start (``warm_start``) may fine-tune on
demonstrations first. Nothing here names a task family: see ``tasks``. Checkpoints every ``save_steps``;
``resume`` continues from the last complete one. With ``eval_steps`` (the default: ``save_steps``) the policy is
evaluated on the held-out ``eval_split`` at the start, as it trains and at the end, and ``RUN/final`` is the best
of those policies, ``RUN/last`` the last step (``selection``); with ``eval_steps: 0``, ``RUN/final`` is the last
step. Either is a normal HF folder (``runs.save_policy``); ``learning_curve.png`` is drawn from the log at the end.
The run folder (new run or resume, checkpoints, recipe.json, the log, TensorBoard events) is ``runs``' business.
Under ``accelerate launch`` every process trains and scores its own completions; one writes (``distributed``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .distributed import agree, is_main, main_first, sharded_launch, wait_for_everyone
from .errors import DeepRetrievalError
from .prompts import Context
from .recipe import TrainRecipe
from .report import plot_learning_curve
from .rewards import RewardConfig
from .runs import CURVE_FILE, LOG_FILE, log_callback, prepare_run, read_selection, save_policy, tensorboard_to
from .selection import dev_examples, finish, selection_callback
from .tasks import Task, TaskReward, render_prompts
from .types import Example

log = logging.getLogger(__name__)


def reward_config(recipe: TrainRecipe, task: Task) -> RewardConfig:
    """The recipe's reward preset, from the task's presets, with ``reward_k`` applied."""
    if recipe.reward not in task.presets:
        known = ", ".join(task.presets)
        raise DeepRetrievalError(f"unknown reward preset {recipe.reward!r} for the {task.name} task (known: {known})")
    config = task.presets[recipe.reward]
    return config if recipe.reward_k is None else replace(config, k=recipe.reward_k)


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    final_dir: Path
    log_path: Path
    steps: int


def build_dataset(
    task: Task, examples: Sequence[Example], tokenizer: Any, recipe: TrainRecipe, context: Context | None = None
):
    """Prompts rendered once, by the same function evaluation uses (``tasks.render_prompts``), with the
    example id alongside."""
    from datasets import Dataset

    prompts = render_prompts(task, examples, recipe.prompt_settings(), tokenizer, context)
    return Dataset.from_dict({"prompt": prompts, "example_id": [e.id for e in examples]})


def trainable(examples: Sequence[Example]) -> tuple[list[Example], int]:
    """Examples with at least one relevant target, and how many were left out (they carry no signal:
    every query scores 0 on them, so GRPO's group advantage is 0)."""
    kept = [e for e in examples if e.relevant]
    return kept, len(examples) - len(kept)


def grpo_config(recipe: TrainRecipe, output_dir: Path, stops: Sequence[int]):
    """TRL's GRPOConfig from the recipe, plus the recipe's ``trl:`` section passed through as it is."""
    from dataclasses import fields

    from trl import GRPOConfig

    values: dict[str, Any] = dict(
        output_dir=str(output_dir),
        learning_rate=recipe.learning_rate,
        lr_scheduler_type="constant",
        max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.prompts_per_step * recipe.num_generations,
        gradient_accumulation_steps=1,
        num_generations=recipe.num_generations,
        max_completion_length=recipe.max_completion_length,
        temperature=recipe.temperature,
        top_k=recipe.top_k,
        top_p=recipe.top_p,
        beta=recipe.beta,
        loss_type=recipe.loss_type,
        scale_rewards=recipe.scale_rewards,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=recipe.keep_checkpoints,
        logging_steps=recipe.logging_steps,
        report_to=["tensorboard"],
        bf16=recipe.bf16,
        use_vllm=recipe.use_vllm,
        seed=recipe.seed,
        data_seed=recipe.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,  # pinning needs an accelerator; on a CPU it only warns
        # Under transformers 5's name (the deprecated gradient_checkpointing warns); TRL's default is True.
        activation_checkpointing=recipe.activation_checkpointing,
        shuffle_dataset=True,
    )
    if stops and recipe.use_vllm:
        # TRL's transformers path stops at generation_config's EOS ids (set in train()); its vLLM path reads
        # only generation_kwargs, which it hands to vLLM's SamplingParams.
        values["generation_kwargs"] = {"stop_token_ids": list(stops)}
    known = {f.name for f in fields(GRPOConfig)}
    for key, value in recipe.trl.items():
        if key not in known:
            raise DeepRetrievalError(f"recipe field trl.{key}: not a trl.GRPOConfig field")
        if key in values and key != "generation_kwargs":
            raise DeepRetrievalError(f"recipe field trl.{key}: set by the recipe itself; change it there")
        if key == "generation_kwargs" and isinstance(value, dict):
            value = {**values.get(key, {}), **value}
        values[key] = value
    return GRPOConfig(**values)


# Called after each logged step with (global step, max steps, the step's logged values).
StepProgress = Callable[[int, int, dict], None]


def _progress_callback(report: StepProgress):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """Reports each logged step to ``report`` (the CLI's progress bar) instead of printing dicts."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                report(state.global_step, state.max_steps, logs)

    return Progress()


def _time_budget_callback(minutes: float):
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        """Stops training at the first step that ends ``minutes`` after training began (its step-0 evaluation
        included); the held-out selection then evaluates that step as the last one."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            # The main process's clock decides: every process stops at the same step.
            if agree((time.monotonic() - self.started) / 60 >= minutes) and not control.should_training_stop:
                log.info("time budget of %g min spent: stopping at step %d", minutes, state.global_step)
                control.should_training_stop = True
                control.should_save = True  # the run folder's last checkpoint is its last step
            return control

    return TimeBudget()


def train(
    recipe: TrainRecipe,
    *,
    resume: bool = False,
    collection=None,
    backend: Any = None,
    progress: StepProgress | None = None,
) -> TrainResult:
    """Run GRPO for ``recipe.max_steps`` steps (in total, counting a resumed checkpoint's steps).

    ``progress``: called after each logged step; it replaces the trainer's own bar and per-step dicts.
    """
    from trl import GRPOTrainer

    from .data import load_collection
    from .models import load_model_and_tokenizer

    task = recipe.task_family()
    settings = recipe.prompt_settings()
    task.check(settings)
    config = reward_config(recipe, task)
    check_sharding(recipe)
    output_dir = Path(recipe.output_dir)
    start = prepare_run(output_dir, recipe, resume)
    with main_first():  # what the main process generates or indexes, the others load
        if collection is None:
            collection = load_collection(
                recipe.data, corpus=Path(recipe.corpus) if recipe.corpus else None, seed=recipe.seed
            )
        if backend is None:
            backend = task.backend(collection, recipe.backend)
    examples, left_out = trainable(collection.split(recipe.split))
    if left_out:
        log.warning(
            "%d of the %s split's queries have no relevant document; left out of training", left_out, recipe.split
        )
    if not examples:
        raise DeepRetrievalError(f"split {recipe.split!r} of {collection.name!r} has no query with a relevant document")
    held_out = dev_examples(collection, recipe, examples) if recipe.eval_steps else []  # checked before the model loads
    context = task.context(backend, collection, settings)
    if context is not None:
        # Actions may depend on what the prompt showed (a feedback menu): the reward sees the same examples.
        examples = context(examples)
    model, tokenizer = load_model_and_tokenizer(recipe.model)
    if recipe.warm_start_epochs and start.checkpoint is None:  # a checkpoint holds the warm-started weights
        from .warm_start import warm_start

        model = warm_start(recipe, task, examples, model, tokenizer, output_dir, collection)
    # TRL stops sampling at the model's generation_config EOS ids: add the task's stop tokens.
    stops = task.stop_token_ids(tokenizer, recipe.variant)
    if stops:
        model.generation_config.eos_token_id = [tokenizer.eos_token_id, *stops]
    reward = TaskReward(task, backend, examples, config, settings, tokenizer=tokenizer)
    args = grpo_config(recipe, output_dir, stops)
    peft_config = None
    if recipe.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=recipe.lora_r,
            lora_alpha=recipe.lora_alpha,
            lora_dropout=recipe.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    log_path = output_dir / LOG_FILE
    if recipe.shared_prefix:
        from .shared_prefix import check_model, shared_prefix_trainer

        check_model(model)
        trainer_class = shared_prefix_trainer()
    else:
        trainer_class = GRPOTrainer
    jsonl = log_callback(log_path)
    trainer = trainer_class(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=build_dataset(task, examples, tokenizer, recipe, context),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[jsonl],
    )
    tensorboard_to(trainer, start.tensorboard_dir)
    if recipe.max_minutes is not None:
        trainer.add_callback(_time_budget_callback(recipe.max_minutes))  # before the selection: it reads the stop
    selection = None
    if held_out:
        selection = selection_callback(recipe, task, collection, held_out, backend, context, tokenizer, trainer, jsonl)
        trainer.add_callback(selection)
    if progress is not None:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(_progress_callback(progress))
    trainer.train(resume_from_checkpoint=None if start.checkpoint is None else str(start.checkpoint))
    step = trainer.state.global_step
    final_dir = output_dir / "final"
    # Sharded parameters are gathered into one state dict by every process (a collective call).
    weights = trainer.accelerator.get_state_dict(trainer.model_wrapped) if sharded_launch() else None
    if is_main():
        if selection is None:
            save_policy(trainer.model, tokenizer, final_dir, recipe, state_dict=weights)
        else:
            finish(selection, trainer.model, tokenizer, recipe, step)
        chosen = read_selection(final_dir)
        plot_learning_curve(log_path, output_dir / CURVE_FILE, chosen["step"] if chosen else None)
    wait_for_everyone()
    return TrainResult(output_dir, final_dir, log_path, step)


def check_sharding(recipe: TrainRecipe) -> None:
    """Refuse what a sharded launch (FSDP, ZeRO-3: no process holds the whole model) cannot do: the held-out
    evaluations, which the main process runs alone; merging a LoRA adapter or a warm start's save, which need
    the whole model in one process."""
    sharding = sharded_launch()
    if sharding is None:
        return
    for problem, field in (
        (recipe.eval_steps, "eval_steps: 0 (evaluate RUN/final afterwards with deepretrieval eval)"),
        (recipe.lora, "lora: false, or launch with DDP or ZeRO-2"),
        (recipe.warm_start_epochs, "warm_start_epochs: 0, or launch with DDP or ZeRO-2"),
    ):
        if problem:
            raise DeepRetrievalError(f"{sharding} shards the model across processes: set {field}")
