"""Held-out selection during training: the policy evaluated on the dev split as it trains, the best one kept.

At the start (step 0: the untrained or warm-started model), every ``eval_steps`` GRPO steps and at the last step,
the in-memory policy is evaluated greedily on the recipe's ``eval_split`` by evaluation's own code
(``evaluate.evaluate_policy`` with an ``HFPolicy`` around the live model: the task's prompts, parsing, execution
on the run's backend, pytrec_eval) into ``RUN/dev/policies/step-N/``. Its measures are logged as ``dev/<measure>``
beside the training reward (train_log.jsonl, TensorBoard). A policy strictly better on ``eval_measure`` than every
one before it (the start included; a tie keeps the earlier step) is saved to ``RUN/best``; after
``early_stopping_patience`` evaluations without one, training stops. At the end (``finish``) ``RUN/final`` is
``RUN/best`` and ``RUN/last`` the last step, each policy.json's ``selection`` saying which step it is and why.

The best so far survives a resume: it is ``RUN/best/policy.json``'s record, and the evaluations are the log's
(cut back to the checkpoint with it). A best saved after that checkpoint by the run before the resume stays a
candidate: it is a policy of this run, trained on the training split and measured on the dev split like the rest.
Under ``accelerate launch`` the main process evaluates and saves; every process stops when it says so.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .evaluate import EvalSettings, evaluate_policy, with_depth
from .prompts import Context
from .recipe import TrainRecipe
from .runs import BEST_DIR, DEV_DIR, LAST_DIR, LOG_FILE, POLICY_FILE, read_log, read_selection, replace_dir, save_policy
from .tasks import Task
from .types import Collection, Example

log = logging.getLogger(__name__)

PREFIX = "dev/"  # the log's and TensorBoard's keys of the dev evaluations: dev/ndcg@10 ...


@dataclass(frozen=True)
class Evaluation:
    step: int
    value: float


@dataclass
class Selection:
    """The dev evaluations so far, on one measure, and the best of them (the earliest of equals)."""

    measure: str
    evaluations: list[Evaluation] = field(default_factory=list)
    best: Evaluation | None = None

    def add(self, evaluation: Evaluation) -> bool:
        """Record an evaluation; True when it is strictly better than the best so far (or the first)."""
        self.evaluations.append(evaluation)
        if self.best is None or evaluation.value > self.best.value:
            self.best = evaluation
            return True
        return False

    def without_gain(self) -> int:
        """Evaluations since the best one (those after its step)."""
        best = self.best.step if self.best else -1
        return sum(e.step > best for e in self.evaluations)

    def record(self, split: str, chosen: Evaluation, why: str) -> dict[str, Any]:
        """policy.json's ``selection`` for the policy of step ``chosen``."""
        start = next((e for e in self.evaluations if e.step == 0), None)
        last = max(self.evaluations, key=lambda e: e.step, default=None)
        return {
            "step": chosen.step,
            "why": why,
            "split": split,
            "measure": self.measure,
            "value": chosen.value,
            "start_value": None if start is None else start.value,
            "last_step": None if last is None else last.step,
            "last_value": None if last is None else last.value,
            "best_step": None if self.best is None else self.best.step,
            "evaluations": len(self.evaluations),
        }


def restore(output_dir: Path, measure: str) -> Selection:
    """The selection state a (resumed) run folder holds: its logged dev evaluations and ``RUN/best``'s record."""
    key = PREFIX + measure
    evaluations = [Evaluation(r["step"], float(r[key])) for r in read_log(output_dir / LOG_FILE) if key in r]
    selection = Selection(measure, evaluations)
    saved = read_selection(output_dir / BEST_DIR)
    if saved is not None and saved.get("measure") == measure:
        selection.best = Evaluation(int(saved["step"]), float(saved["value"]))
        logged = max((e.step for e in evaluations), default=-1)
        if selection.best.step > logged:
            log.warning(
                "%s holds step %d, saved after the checkpoint resumed from: it stays a candidate for final",
                output_dir / BEST_DIR,
                selection.best.step,
            )
    elif evaluations:
        selection.best = max(reversed(evaluations), key=lambda e: e.value)  # ties: the earliest
    return selection


def dev_examples(collection: Collection, recipe: TrainRecipe, training: Sequence[Example]) -> list[Example]:
    """The held-out examples: the judged queries of ``eval_split`` (the first ``eval_limit``), none of them a
    training query."""
    from .errors import DeepRetrievalError

    if recipe.eval_split != "all" and recipe.eval_split not in collection.splits:
        known = ", ".join(sorted(collection.splits))
        raise DeepRetrievalError(
            f"field 'eval_split': {collection.name!r} has no split {recipe.eval_split!r} (it has {known}); "
            "name another or set eval_steps: 0 (no held-out selection: final is the last step)"
        )
    examples = [e for e in collection.split(recipe.eval_split) if e.targets]
    if not examples:
        raise DeepRetrievalError(
            f"field 'eval_split': split {recipe.eval_split!r} of {collection.name!r} has no judged query; "
            "name another split or set eval_steps: 0"
        )
    trained = {e.id for e in training}
    overlap = [e.id for e in examples if e.id in trained]
    if overlap:
        raise DeepRetrievalError(
            f"field 'eval_split': {len(overlap)} of its queries are training queries too (e.g. {overlap[0]!r})"
        )
    return examples[: recipe.eval_limit] if recipe.eval_limit else examples


def selection_callback(
    recipe: TrainRecipe,
    task: Task,
    collection: Collection,
    examples: Sequence[Example],
    backend: Any,
    context: Context | None,
    tokenizer: Any,
    trainer: Any,
    jsonl: Any,
):
    """The TrainerCallback that evaluates, logs, saves the best and stops early (see the module docstring)."""
    from transformers import TrainerCallback
    from transformers.integrations import TensorBoardCallback

    from .distributed import agree, is_main
    from .policies.llm import HFPolicy

    output_dir = Path(recipe.output_dir)
    assert recipe.eval_measure is not None and recipe.eval_steps  # filled in and checked by the recipe
    measure, every = recipe.eval_measure, recipe.eval_steps
    settings = with_depth(task, EvalSettings(batch_size=16))

    class DevSelection(TrainerCallback):
        def __init__(self) -> None:
            self.selection = restore(output_dir, measure)
            self.stopped_early = False

        def evaluate(self, model: Any, step: int) -> dict[str, float]:
            policy = HFPolicy(
                f"{output_dir}@step-{step}",
                task=task,
                backend=backend,
                prompt=recipe.prompt_settings(),
                name=f"step-{step}",
                model=model,
                tokenizer=tokenizer,
                context=context,
            )
            training = model.training
            model.eval()
            try:
                result = evaluate_policy(
                    collection,
                    recipe.eval_split,
                    examples,
                    policy,
                    task,
                    backend,
                    output_dir / DEV_DIR,
                    settings,
                    overwrite=True,
                )
            finally:
                model.train(training)
            return {m: float(v) for m, v in result.metrics.items() if m in task.measures}

        def run(self, model: Any, step: int) -> bool:
            """On the main process: evaluate at ``step``, log it, save the policy when it is the best so far;
            in every process: True to stop (the main process's decision)."""
            return agree(self.evaluate_and_save(model, step) if is_main() else False)

        def evaluate_and_save(self, model: Any, step: int) -> bool:
            values = self.evaluate(model, step)
            better = self.selection.add(Evaluation(step, values[measure]))
            if better:
                best = self.selection.best
                assert best is not None
                why = f"best dev {measure} so far"
                save_policy(
                    _copy_if_merged(model),
                    tokenizer,
                    output_dir / BEST_DIR,
                    recipe,
                    self.selection.record(recipe.eval_split, best, why),
                )
            record = {PREFIX + m: v for m, v in values.items()}
            jsonl.write(step, record)
            writer = next(
                (
                    c.tb_writer
                    for c in trainer.callback_handler.callbacks
                    if isinstance(c, TensorBoardCallback) and c.tb_writer is not None
                ),
                None,
            )
            if writer is not None:
                for name, value in record.items():
                    writer.add_scalar(name, value, step)
                writer.flush()
            patience = recipe.early_stopping_patience
            if patience and self.selection.without_gain() >= patience:
                log.info("no better dev %s in %d evaluations: stopping at step %d", measure, patience, step)
                self.stopped_early = True
            return self.stopped_early

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step == 0:
                self.run(model, 0)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            step = state.global_step
            last = step >= state.max_steps or control.should_training_stop  # a time budget may end it
            if (step % every == 0 or last) and self.run(model, step):
                control.should_training_stop = True
                control.should_save = True  # the run folder's last checkpoint is its last step
            return control

    return DevSelection()


def _copy_if_merged(model: Any) -> Any:
    """``save_policy`` merges a LoRA adapter into its model: mid-training, into a copy."""
    if hasattr(model, "merge_and_unload"):
        import copy

        return copy.deepcopy(model)
    return model


def finish(callback: Any, model: Any, tokenizer: Any, recipe: TrainRecipe, step: int) -> Path:
    """The run's end: ``RUN/last`` (the last step's policy) and ``RUN/final`` (a copy of ``RUN/best``), each with
    its ``selection`` record; returns ``RUN/final``."""
    output_dir = Path(recipe.output_dir)
    selection: Selection = callback.selection
    split = recipe.eval_split
    last = next((e for e in reversed(selection.evaluations) if e.step == step), None)
    stopped = " (stopped early)" if callback.stopped_early else ""
    last_record = selection.record(split, last or Evaluation(step, float("nan")), f"the last step{stopped}")
    save_policy(model, tokenizer, output_dir / LAST_DIR, recipe, last_record)
    best = selection.best
    if best is None or not (output_dir / BEST_DIR).is_dir():
        raise RuntimeError(f"{output_dir / BEST_DIR}: no best policy was saved")  # the start is always evaluated
    why = (
        f"best dev {selection.measure} of {len(selection.evaluations)} evaluations "
        f"(steps {selection.evaluations[0].step}-{selection.evaluations[-1].step}; the start included; "
        f"a tie keeps the earlier step){stopped}"
    )
    final = output_dir / "final"
    with replace_dir(final) as tmp:
        shutil.copytree(output_dir / BEST_DIR, tmp, dirs_exist_ok=True)
        policy = json.loads((tmp / POLICY_FILE).read_text())
        policy["selection"] = selection.record(split, best, why)
        (tmp / POLICY_FILE).write_text(json.dumps(policy, indent=2))
    log.info(
        "final: step %d (dev %s %.4f; start %s)",
        best.step,
        selection.measure,
        best.value,
        policy["selection"]["start_value"],
    )
    return final
