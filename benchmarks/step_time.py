"""GRPO step time of recipe variants, the demo recipe otherwise, in one run.

    .venv/bin/python benchmarks/step_time.py --steps 4                      # -> results/step_time.json
    .venv/bin/python benchmarks/step_time.py --steps 4 --compare prompt     # -> results/step_time_prompt.json
    .venv/bin/python benchmarks/step_time.py --steps 4 --repeats 2 --compare shared-prefix
                                                                # -> results/step_time_shared_prefix.json

``checkpointing``: activation checkpointing on (TRL's default) and off. ``prompt``: the full and the short
prompt style (``prompt_style``), in expand mode with three titles (the demo's) and in expand-rm3 mode.
``shared-prefix``: stock GRPO and shared-prefix GRPO (``shared_prefix``: each group's prompt encoded once) on
three recipes, the literature demo's, the demo's and select-rm3 on Cranfield (without its warm start: only the
GRPO step is timed); with each step's loss and reward (from one seed, the first step's losses should agree up
to float summation order), an estimate of each step's FLOPs, and the host's float32 matmul rate, measured
before and after the runs, as the bound the achieved rate is compared with.

Each configuration trains the embedded SmolLM2-135M (``--model`` for another) for ``--steps`` steps from
scratch (same seed, so the same prompts and, up to float differences, the same samples); the configurations
alternate ``--repeats`` times, so host noise hits each alike, and the median of TRL's logged ``step_time`` is
reported, first step left out (it includes warm-up). Speed is a ratio within one run: hosts differ up to 3x.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepretrieval.recipe import TrainRecipe, demo_recipe, load_recipe
from deepretrieval.runs import read_log
from deepretrieval.train import train

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"

COMPARISONS = {
    "checkpointing": {
        "checkpointing on (TRL's default)": {"activation_checkpointing": True},
        "checkpointing off": {"activation_checkpointing": False},
    },
    "prompt": {
        "full prompt (demo recipe)": {},
        "short prompt": {"prompt_style": "short"},
        "expand-rm3, short prompt": {"prompt_style": "short", "mode": "expand-rm3", "reward": "ndcg-lenient"},
    },
}
SHARED_PREFIX = "shared-prefix"
# name -> (recipe file under recipes/, or None for the demo recipe; changes to it)
SHARED_PREFIX_RECIPES: dict[str, tuple[str | None, dict]] = {
    "literature-demo": ("literature-demo.yaml", {}),
    "demo": (None, {}),
    "select-rm3-cranfield": ("select-rm3-cranfield.yaml", {"warm_start_epochs": 0}),
}
VARIANTS = {"stock": {"shared_prefix": False}, "shared-prefix": {"shared_prefix": True}}
MATMUL_SIZE = 2048


def with_changes(recipe: TrainRecipe, changes: dict) -> TrainRecipe:
    """The recipe with ``changes``, validated (``model_copy`` would take a misspelt field silently)."""
    return TrainRecipe(**{**recipe.model_dump(), **changes})


def repo_recipe(file: str | None, model: str | None) -> TrainRecipe:
    """A recipe of the repo's ``recipes/`` (the demo's for None), its data path made absolute: recipe files
    name their data relative to the repo root, where ``deepretrieval train recipes/...`` runs."""
    recipe = demo_recipe() if file is None else load_recipe(ROOT / "recipes" / file, {})
    changes: dict[str, Any] = {} if model is None else {"model": model}
    if (ROOT / recipe.data).exists():
        changes["data"] = str((ROOT / recipe.data).resolve())
    return with_changes(recipe, changes)


def shared_prefix_recipe(name: str, model: str | None) -> TrainRecipe:
    """The recipe ``name`` of ``SHARED_PREFIX_RECIPES``, before the variant's switch."""
    file, changes = SHARED_PREFIX_RECIPES[name]
    return with_changes(repo_recipe(file, model), changes)


def prompt_tokens(recipe: TrainRecipe, tokenizer: Any) -> float:
    """Mean prompt length in tokens over the examples the recipe trains on, as training renders the prompts."""
    from deepretrieval.data import load_collection
    from deepretrieval.train import build_dataset, trainable

    task = recipe.task_family()
    corpus = Path(recipe.corpus) if recipe.corpus else None
    collection = load_collection(recipe.data, corpus=corpus, seed=recipe.seed)
    backend = task.backend(collection, recipe.backend)
    examples, _ = trainable(collection.split(recipe.split))
    context = task.context(backend, collection, recipe.prompt_settings())
    if context is not None:
        examples = context(examples)
    prompts = build_dataset(task, examples, tokenizer, recipe, context)["prompt"]
    return statistics.mean(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)


def train_log(recipe: TrainRecipe, steps: int, folder: Path) -> list[dict]:
    """The logged steps of a fresh ``steps``-step run of the recipe in ``folder``."""
    result = train(with_changes(recipe, {"max_steps": steps, "save_steps": steps, "output_dir": str(folder)}))
    return [r for r in read_log(result.log_path) if "step_time" in r]


def timed(records: list[dict]) -> list[dict]:
    """The steps whose time counts: all but the first (it includes warm-up)."""
    return records[1:]


# ---------------------------------------------------------------- FLOPs


@dataclass(frozen=True)
class ModelSize:
    """``parameters``: every parameter but the token embedding and the LM head (tied in SmolLM2), which cost
    per scored position, not per token, and are counted apart as ``hidden`` x ``vocab``."""

    parameters: int
    hidden: int
    vocab: int


def model_size(model: Any) -> ModelSize:
    head = model.get_output_embeddings().weight
    embedding = model.get_input_embeddings().weight
    apart = {id(head), id(embedding)}
    parameters = sum(p.numel() for p in model.parameters() if id(p) not in apart)
    vocab, hidden = head.shape
    return ModelSize(parameters, hidden, vocab)


def step_gflop(recipe: TrainRecipe, size: ModelSize, prompt: float, completion: float) -> dict[str, float]:
    """Estimated GFLOP of one GRPO step of the recipe: generation, training (forward and backward) and total.

    N: ``size.parameters``; h x V: the LM head; U: prompts per step; G: completions per prompt (the group);
    P, C: mean prompt and completion tokens. A matrix-vector product with N weights costs 2N per token:

    - generation: 2N per token encoded, over U·G·(P + C) tokens in stock GRPO (every row prefills its own
      prompt, then decodes), U·P + U·G·C with ``shared_prefix`` (each prompt prefilled once, its cache
      copied to the group); plus the head, 2hV per sampled token, U·G·C in both.
    - training: (2 forward + 4 backward, + 2 recomputed under ``activation_checkpointing``)·N per token, over
      U·G·(P + C) tokens in stock GRPO, U·P + U·G·C with ``shared_prefix`` (the group packed into one row: the
      prompt once, then each completion); plus the head, (2 + 4)·hV per scored position: every position in
      stock GRPO (TRL's fused head on a CPU scores all it is given), U·G·C with ``shared_prefix`` (only the
      positions that score a completion token reach the head); checkpointing does not recompute it.

    Left out, so the estimate is a floor: attention's own products (4·layers·hidden per token and position
    attended: up to about a tenth of 2N at 300 tokens for SmolLM2), padding (rows are padded to the batch's
    longest prompt and completion, and finished rows keep decoding until the last one stops), and the
    optimizer. The recipes have beta 0 and one iteration per generation: no reference or old-policy pass.
    """
    n, head = size.parameters, size.hidden * size.vocab
    u, g = recipe.prompts_per_step, recipe.num_generations
    shared = recipe.shared_prefix
    encoded = u * prompt + u * g * completion if shared else u * g * (prompt + completion)
    generation = 2 * n * encoded + 2 * head * u * g * completion
    trained = u * prompt + u * g * completion if shared else u * g * (prompt + completion)
    scored = u * g * completion if shared else trained
    per_token = 2 + 4 + (2 if recipe.activation_checkpointing else 0)
    training = per_token * n * trained + (2 + 4) * head * scored
    return {
        "generation": round(generation / 1e9, 1),
        "training": round(training / 1e9, 1),
        "total": round((generation + training) / 1e9, 1),
    }


def matmul_gflops(size: int = MATMUL_SIZE, warmup: int = 3, repeats: int = 10) -> float:
    """The host's float32 matmul rate (GFLOP/s) on ``torch.get_num_threads()`` threads, as training runs:
    the median of ``repeats`` timed products of two size x size matrices, after ``warmup`` untimed ones."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(warmup):
        torch.matmul(a, b)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(seconds) / 1e9


# ---------------------------------------------------------------- the comparisons


def compare_changes(args: argparse.Namespace) -> None:
    """``checkpointing`` or ``prompt``: demo-recipe changes, timed in turn."""
    from deepretrieval.models import load_model_and_tokenizer

    # TRL's stock path, as these comparisons were measured before shared_prefix existed (and became the default).
    base = with_changes(repo_recipe(None, args.model), {"shared_prefix": False})
    configs = COMPARISONS[args.compare]
    times: dict[str, list[float]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for i, (name, changes) in enumerate(configs.items()):
                records = train_log(with_changes(base, changes), args.steps, Path(tmp) / f"{repeat}-{i}")
                times[name] += [r["step_time"] for r in timed(records)]
    medians = {name: statistics.median(values) for name, values in times.items()}
    first = next(iter(medians.values()))
    _, tokenizer = load_model_and_tokenizer(base.model)
    report = {
        "configurations": configs,
        "mean_prompt_tokens": {
            name: round(prompt_tokens(with_changes(base, changes), tokenizer), 1) for name, changes in configs.items()
        },
        "steps_per_run": args.steps,
        "repeats": args.repeats,
        "step_seconds": {name: [round(t, 2) for t in values] for name, values in times.items()},
        "median_step_seconds": {name: round(m, 2) for name, m in medians.items()},
        "ratio_to_default": {name: round(m / first, 3) for name, m in medians.items()},
    }
    args.out.write_text(json.dumps(report, indent=2))
    for name, m in medians.items():
        print(f"{name:35s} median step {m:6.1f} s  ({m / first:.2f}x)")
    print(f"wrote {args.out}")


def compare_shared_prefix(args: argparse.Namespace) -> None:
    """Stock against shared-prefix GRPO on each recipe of ``SHARED_PREFIX_RECIPES``, alternating."""
    import torch

    matmul_before = matmul_gflops()
    runs: dict[str, dict[str, list[list[dict]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in SHARED_PREFIX_RECIPES:
            base = shared_prefix_recipe(name, args.model)
            runs[name] = {variant: [] for variant in VARIANTS}
            for repeat in range(args.repeats):
                for variant, switch in VARIANTS.items():
                    folder = Path(tmp) / f"{name}-{repeat}-{variant}"
                    runs[name][variant].append(train_log(with_changes(base, switch), args.steps, folder))
    matmul_after = matmul_gflops()
    limit = max(matmul_before, matmul_after)
    report = {
        "command": shlex.join([".venv/bin/python", *sys.argv]),
        "steps_per_run": args.steps,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "host_matmul_gflop_per_second": {
            "before": round(matmul_before, 1),
            "after": round(matmul_after, 1),
            "limit": round(limit, 1),
            "measured_as": f"float32 {MATMUL_SIZE}x{MATMUL_SIZE} torch.matmul, median of 10 after 3 warm-up",
        },
        "recipes": {name: recipe_report(name, runs[name], limit, args.model) for name in SHARED_PREFIX_RECIPES},
    }
    args.out.write_text(json.dumps(report, indent=2))
    for name, data in report["recipes"].items():
        stock, shared = (data["median_step_seconds"][v] for v in VARIANTS)
        print(
            f"{name:22s} stock {stock:6.2f} s  shared-prefix {shared:6.2f} s  ({data['speedup']:.2f}x)  "
            f"step-1 loss |diff| {data['step_1_loss_abs_difference']:.2e}"
        )
    print(f"host matmul {matmul_before:.1f} / {matmul_after:.1f} GFLOP/s (before / after)")
    print(f"wrote {args.out}")


def recipe_report(name: str, runs: dict[str, list[list[dict]]], limit: float, model: str | None) -> dict:
    """One recipe's entry of step_time_shared_prefix.json, from its runs' logs (variant -> one log per repeat)."""
    from deepretrieval.models import load_model_and_tokenizer

    file, changes = SHARED_PREFIX_RECIPES[name]
    base = shared_prefix_recipe(name, model)
    loaded, tokenizer = load_model_and_tokenizer(base.model)
    size = model_size(loaded)
    prompt = prompt_tokens(base, tokenizer)
    entry: dict[str, Any] = {
        "recipe": f"recipes/{file}" if file else "demo_recipe()",
        "changes": changes,
        "configurations": VARIANTS,
        "model": base.model,
        "prompts_per_step": base.prompts_per_step,
        "num_generations": base.num_generations,
        "activation_checkpointing": base.activation_checkpointing,
        "non_embedding_parameters": size.parameters,
        "hidden_size": size.hidden,
        "vocab_size": size.vocab,
        "mean_prompt_tokens": round(prompt, 1),
    }
    completion, seconds, medians, gflop, achieved = {}, {}, {}, {}, {}
    for variant, switch in VARIANTS.items():
        steps = [r for log in runs[variant] for r in timed(log)]
        completion[variant] = statistics.mean(r["completions/mean_length"] for r in steps)
        seconds[variant] = [round(r["step_time"], 2) for r in steps]
        medians[variant] = statistics.median(r["step_time"] for r in steps)
        gflop[variant] = step_gflop(with_changes(base, switch), size, prompt, completion[variant])
        achieved[variant] = gflop[variant]["total"] / medians[variant]
    stock, shared = VARIANTS
    step_1 = [abs(a[0]["loss"] - b[0]["loss"]) for a, b in zip(runs[stock], runs[shared], strict=True)]
    return {
        **entry,
        "mean_completion_tokens": {v: round(c, 1) for v, c in completion.items()},
        "step_seconds": seconds,
        "median_step_seconds": {v: round(m, 2) for v, m in medians.items()},
        "speedup": round(medians[stock] / medians[shared], 3),
        "gflop_per_step": gflop,
        "achieved_gflop_per_second": {v: round(a, 1) for v, a in achieved.items()},
        "fraction_of_host_matmul": {v: round(a / limit, 3) for v, a in achieved.items()},
        "runs": {
            variant: [{key: [r[key] for r in log] for key in ("loss", "reward")} for log in logs]
            for variant, logs in runs.items()
        },
        "step_1_loss_abs_difference": max(step_1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--compare", choices=[*COMPARISONS, SHARED_PREFIX], default="checkpointing")
    parser.add_argument("--model", help="the model to train (default: each recipe's own, smollm2-135m)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2: the first step is left out of the times")
    name = "step_time.json" if args.compare == "checkpointing" else f"step_time_{args.compare.replace('-', '_')}.json"
    args.out = args.out or RESULTS / name
    if args.compare == SHARED_PREFIX:
        compare_shared_prefix(args)
    else:
        compare_changes(args)


if __name__ == "__main__":
    main()
