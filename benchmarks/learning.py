"""Learning benchmark: GRPO with the embedded SmolLM2 on a real collection's train split, evaluated on test.

    .venv/bin/python benchmarks/learning.py --data ../shared/data/classic/cranfield --out runs/bench/cranfield
    .venv/bin/python benchmarks/learning.py --data ../shared/data/classic/med --out runs/bench/med

Any TrainRecipe field can be set with --set key=value (repeatable). Writes OUT/learning.json (the table,
training wall time, the recipe) and OUT/demo.md; rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from deepretrieval.demo import run_demo
from deepretrieval.evaluate import load_policy_metrics
from deepretrieval.recipe import TrainRecipe

DEFAULTS = {
    "model": "smollm2-135m",
    "variant": "direct",
    "mode": "expand",
    "reward": "recall-lenient",
    "context_docs": 3,
    "learning_rate": 2e-5,
    "max_steps": 60,
    "prompts_per_step": 2,
    "num_generations": 8,
    "max_completion_length": 32,
    "save_steps": 10,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe field")
    args = parser.parse_args()
    values = {**DEFAULTS, "data": args.data, "split": "train"}
    for item in args.set:
        key, _, value = item.partition("=")
        values[key] = yaml.safe_load(value)
    recipe = TrainRecipe(**values)
    started = time.perf_counter()
    result = run_demo(args.out, recipe=recipe, split="test", baselines=("original", "prf"))
    elapsed = time.perf_counter() - started
    report = {
        "data": args.data,
        "recipe": recipe.model_dump(),
        "wall_seconds_total": round(elapsed, 1),
        "policies": load_policy_metrics(result.eval_dir),
    }
    (args.out / "learning.json").write_text(json.dumps(report, indent=2))
    print(result.table)
    print(f"total wall time {elapsed / 60:.1f} min; wrote {args.out}/learning.json")


if __name__ == "__main__":
    main()
