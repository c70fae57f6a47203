"""The main job on the embedded default: baselines, a short GRPO run with SmolLM2, before/after table.

Everything is generated or shipped with the package (demo collection, SmolLM2-135M-Instruct GGUF), so it
runs offline on 2 CPU cores in 10–30 minutes (measured: 10 min on an Intel host, 28 on an AVX2-only AMD one).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .recipe import TrainRecipe, demo_recipe

if TYPE_CHECKING:
    from .train import StepProgress


@dataclass(frozen=True)
class DemoResult:
    table: str
    eval_dir: Path
    train_dir: Path
    curve: Path
    learning_curve: Path  # train reward and dev measures against steps and minutes (the run's learning_curve.png)
    train_seconds: float  # wall time of this invocation's training (0 when it only resumed a finished run)


def run_demo(
    out_dir: Path,
    *,
    recipe: TrainRecipe | None = None,
    split: str = "test",
    baselines: tuple[str, ...] = ("original", "prf", "oracle"),
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    say: Callable[[str], None] = print,
    train_progress: StepProgress | None = None,
) -> DemoResult:
    """Baselines and the untrained model, GRPO on ``recipe.split``, the trained model; all on ``split``.

    Also the learning benchmark's pipeline (on Cranfield and MED, without the oracle). Rerunning it
    resumes: evaluations skip finished queries and training continues from its last checkpoint.
    """
    from .data import load_collection
    from .evaluate import EvalSettings, evaluate, load_policy_metrics
    from .policies import make_policy
    from .policies.llm import HFPolicy
    from .report import markdown_table, plot_training
    from .runs import CURVE_FILE, LOG_FILE, last_checkpoint
    from .train import train
    from .warm_start import WARM_START_DIR

    recipe = (recipe or demo_recipe()).model_copy(update={"output_dir": str(out_dir / "train")})
    task = recipe.task_family()
    collection = load_collection(recipe.data, corpus=Path(recipe.corpus) if recipe.corpus else None, seed=recipe.seed)
    backend = task.backend(collection, recipe.backend)
    # Searched as deep as the task's deepest reported cut-off (recall@1000 here, recall@3000 for literature).
    eval_dir, eval_settings = out_dir / "eval", EvalSettings(batch_size=16)
    prompt = recipe.prompt_settings()
    context = task.context(backend, collection, prompt)

    def model_policy(ref: str, name: str) -> HFPolicy:
        return HFPolicy(ref, task=task, backend=backend, prompt=prompt, name=name, context=context)

    say(f"1/3 baselines ({', '.join(baselines)}) and the untrained model")
    fixed = [make_policy(s, task=task, backend=backend, collection=collection) for s in baselines]
    untrained = model_policy(recipe.model, f"untrained {recipe.model} [{recipe.mode}]")
    evaluate(collection, split, [*fixed, untrained], backend, eval_dir, eval_settings, task=task, progress=progress)

    train_dir = Path(recipe.output_dir)
    say(f"2/3 GRPO: {recipe.max_steps} steps x {recipe.prompts_per_step * recipe.num_generations} completions")
    resume = last_checkpoint(train_dir) is not None
    started = time.perf_counter()
    result = train(recipe, resume=resume, collection=collection, backend=backend, progress=train_progress)
    train_seconds = time.perf_counter() - started

    say("3/3 trained policy on the held-out split")
    learned = [model_policy(str(result.final_dir), f"trained {recipe.model} [{recipe.mode}]")]
    if recipe.warm_start_epochs:  # the model before GRPO too: what the warm start alone gave
        learned.append(model_policy(str(train_dir / WARM_START_DIR), f"warm-started {recipe.model} [{recipe.mode}]"))
    evaluate(collection, split, learned, backend, eval_dir, eval_settings, task=task, progress=progress, overwrite=True)

    curve, learning_curve = out_dir / "reward_curve.png", out_dir / CURVE_FILE
    plot_training(train_dir / LOG_FILE, curve)
    shutil.copyfile(train_dir / CURVE_FILE, learning_curve)
    table = markdown_table(load_policy_metrics(eval_dir))
    title = f"# {collection.name}: GRPO with {recipe.model}, {recipe.max_steps} steps ({split} split)"
    chosen = _chosen(result.final_dir)
    images = f"![reward curve](reward_curve.png)\n\n![learning curve]({CURVE_FILE})"
    (out_dir / "demo.md").write_text(f"{title}\n\n{table}\n\n{chosen}{images}\n")
    return DemoResult(table, eval_dir, train_dir, curve, learning_curve, train_seconds)


def _chosen(final_dir: Path) -> str:
    """A line saying which step the trained policy is (held-out selection), or nothing."""
    from .runs import read_selection

    record = read_selection(final_dir)
    if not record:
        return ""
    start = "" if record.get("start_value") is None else f"; the start {record['start_value']:.3f}"
    return (
        f"The trained policy is step {record['step']} of {record['last_step']}: {record['why']} "
        f"({record['split']} {record['measure']} {record['value']:.3f}{start}).\n\n"
    )
