"""GRPO step time of recipe variants, the demo recipe otherwise, in one run.

    .venv/bin/python benchmarks/step_time.py --steps 4                      # -> results/step_time.json
    .venv/bin/python benchmarks/step_time.py --steps 4 --compare prompt     # -> results/step_time_prompt.json

``checkpointing``: activation checkpointing on (TRL's default) and off. ``prompt``: the full and the short
prompt style (``prompt_style``), in expand mode with three titles (the demo's) and in expand-rm3 mode.

Each configuration trains the embedded SmolLM2-135M for ``--steps`` steps from scratch on the demo
collection (same seed, so the same prompts and, up to float differences, the same samples); the
configurations alternate ``--repeats`` times and the median of TRL's logged ``step_time`` is reported,
first step left out (it includes warm-up). Speed is a ratio within one run: hosts differ up to 3x.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from deepretrieval.recipe import demo_recipe
from deepretrieval.train import read_log, train

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


def prompt_tokens(changes: dict) -> float:
    """Mean prompt length in tokens over the demo's train split, as training renders the prompts."""
    from transformers import AutoTokenizer

    from deepretrieval.data import load_collection
    from deepretrieval.models import smollm2_tokenizer_dir
    from deepretrieval.train import build_dataset

    recipe = demo_recipe().model_copy(update=changes)
    task, collection = recipe.task_family(), load_collection(recipe.data)
    backend = task.backend(collection, recipe.backend)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir())
    examples = collection.split("train")
    context = task.context(backend, collection, recipe.prompt_settings())
    prompts = build_dataset(task, examples, tokenizer, recipe, context)["prompt"]
    return statistics.mean(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)


def step_times(changes: dict, steps: int, folder: Path) -> list[float]:
    recipe = demo_recipe().model_copy(
        update={"max_steps": steps, "save_steps": steps, "output_dir": str(folder), **changes}
    )
    result = train(recipe)
    return [r["step_time"] for r in read_log(result.log_path) if "step_time" in r][1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--compare", choices=COMPARISONS, default="checkpointing")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    name = "step_time.json" if args.compare == "checkpointing" else f"step_time_{args.compare}.json"
    args.out = args.out or Path(__file__).parent / "results" / name
    configs = COMPARISONS[args.compare]
    times: dict[str, list[float]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for i, (name, changes) in enumerate(configs.items()):
                times[name] += step_times(changes, args.steps, Path(tmp) / f"{repeat}-{i}")
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = next(iter(medians.values()))
    report = {
        "configurations": configs,
        "mean_prompt_tokens": {name: round(prompt_tokens(changes), 1) for name, changes in configs.items()},
        "steps_per_run": args.steps,
        "repeats": args.repeats,
        "step_seconds": {name: [round(t, 2) for t in values] for name, values in times.items()},
        "median_step_seconds": {name: round(m, 2) for name, m in medians.items()},
        "ratio_to_default": {name: round(m / base, 3) for name, m in medians.items()},
    }
    args.out.write_text(json.dumps(report, indent=2))
    for name, m in medians.items():
        print(f"{name:35s} median step {m:6.1f} s  ({m / base:.2f}x)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
