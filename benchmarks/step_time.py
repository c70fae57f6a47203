"""GRPO step time with and without activation checkpointing, the demo recipe otherwise, in one run.

    .venv/bin/python benchmarks/step_time.py --steps 4     # -> benchmarks/results/step_time.json

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

CONFIGS = {"checkpointing on (TRL's default)": True, "checkpointing off": False}


def step_times(checkpointing: bool, steps: int, folder: Path) -> list[float]:
    recipe = demo_recipe().model_copy(
        update={
            "max_steps": steps,
            "save_steps": steps,
            "activation_checkpointing": checkpointing,
            "output_dir": str(folder),
        }
    )
    result = train(recipe)
    return [r["step_time"] for r in read_log(result.log_path) if "step_time" in r][1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "step_time.json")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for i, (name, checkpointing) in enumerate(CONFIGS.items()):
                times[name] += step_times(checkpointing, args.steps, Path(tmp) / f"{repeat}-{i}")
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["checkpointing on (TRL's default)"]
    report = {
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
