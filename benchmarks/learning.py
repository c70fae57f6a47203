"""Learning benchmark: GRPO with the embedded SmolLM2 on a real collection's train split, evaluated on test.

    .venv/bin/python benchmarks/learning.py --data ../shared/data/classic/cranfield --out runs/bench/cranfield
    .venv/bin/python benchmarks/learning.py --data ../shared/data/classic/med --out runs/bench/med

    .venv/bin/python benchmarks/learning.py --out runs/demo --summarize   # learning.json of a `make demo` run

The recipe is the demo's (``deepretrieval/recipes/demo.yaml``, the defaults) with the collection's train
split; any TrainRecipe field can be set with --set key=value (repeatable). Writes OUT/learning.json (the
table, training wall time and steps/s, the recipe, completion statistics from the training log) and
OUT/demo.md; rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml
from ceilings import MODES as CEILING_MODES
from ceilings import ceiling

from deepretrieval.data import load_collection
from deepretrieval.demo import run_demo
from deepretrieval.evaluate import load_policy_metrics, paired_test
from deepretrieval.recipe import TrainRecipe, demo_recipe, load_recipe
from deepretrieval.runs import LOG_FILE, family_stat, read_log, read_selection
from deepretrieval.tasks import get_task
from deepretrieval.warm_start import WARM_START_DIR, read_summary

MEASURES = ("ndcg@10", "recall@100", "recall@1000")
LITERATURE_MEASURES = ("recall@100", "recall@1000", "recall@3000", "ndcg@10")


def training_summary(log_path: Path) -> dict[str, float]:
    """Means over the logged steps of what the completions looked like.

    The format-error ratio is the reward adapter's, logged under the family's prefix (``retrieval/``,
    ``literature/``, ``qa/``: ``runs.family_stat``); the summary names it as logged."""
    records = [r for r in read_log(log_path) if "reward" in r]
    family_keys = {found[0] for r in records if (found := family_stat(r, "format_error_ratio"))}
    keys = ("completions/clipped_ratio", "completions/mean_length", *sorted(family_keys), "step_time")
    summary = {}
    for key in keys:
        values = [r[key] for r in records if key in r]
        if values:
            summary[f"mean {key}"] = round(sum(values) / len(values), 4)
            summary[f"last {key}"] = round(values[-1], 4)
    return summary


def significance(run_dir: Path, recipe: dict, split: str = "test", examples=None) -> dict:
    """Paired tests of the trained (and warm-started) policy against the baselines (RM3 or pico-boolean, the
    original query) and the untrained model, per measure; on ``examples`` when given (a group of the split)."""
    if examples is None:
        collection = load_collection(recipe["data"], seed=recipe.get("seed", 0))
        examples = [e for e in collection.split(split) if e.relevant]
    slugs = list(load_policy_metrics(run_dir / "eval"))
    learned = [s for s in slugs if s.startswith(("trained", "warm-started"))]
    bases = [b for b in ("prf", "pico-boolean", "original") if b in slugs] + [
        s for s in slugs if s.startswith("untrained")
    ]
    task = get_task(recipe["task"])
    measures = measures_of(run_dir / "eval", task.measures)
    pairs = [(policy, base) for policy in learned for base in bases]
    # GRPO's own gain: the trained policy against the warm start it began from.
    pairs += [(t, w) for t in learned if t.startswith("trained") for w in learned if w.startswith("warm-started")]
    return {
        f"{policy} vs {base}": paired_test(run_dir / "eval", examples, policy, base, measures, task)
        for policy, base in pairs
    }


def dev_curve(log_path: Path) -> list[dict]:
    """Each held-out evaluation of the run: step, minutes since GRPO began, the dev measures; and the mean
    training reward of the steps since the previous evaluation."""
    curve, rewards = [], []
    for record in read_log(log_path):
        if "reward" in record:
            rewards.append(record["reward"])
        dev = {k.removeprefix("dev/"): v for k, v in record.items() if k.startswith("dev/")}
        if dev:
            mean = round(sum(rewards) / len(rewards), 4) if rewards else None
            curve.append({"step": record["step"], "minutes": record.get("minutes"), "train_reward": mean, **dev})
            rewards = []
    return curve


def measures_of(eval_dir: Path, measures: tuple[str, ...]) -> tuple[str, ...]:
    """The task's ``measures`` that every policy of the evaluation reports."""
    metrics = list(load_policy_metrics(eval_dir).values())
    return tuple(m for m in measures if all(m in found for found in metrics))


def topic_groups(recipe: dict, split: str = "test") -> dict[str, list]:
    """For a generated collection whose reviews name their concepts (``meta`` condition / intervention): the
    split's judged examples by what training saw of them. With a concept-held-out split
    (``literature-demo?held_out_conditions=N``): those whose condition no training review has, and of them
    those whose intervention none has either (nothing of the topic was trained on). Always: those whose
    condition-intervention pair a training review has (the query could be recalled) and those whose pair is
    new but whose concepts training saw apart (the query has to be composed). Empty groups are left out, and
    so is everything for data without concepts."""
    collection = load_collection(recipe["data"], seed=recipe.get("seed", 0))
    examples = [e for e in collection.split(split) if e.relevant]
    if not examples or "condition" not in examples[0].meta:
        return {}
    train = collection.split(recipe["split"])
    conditions = {e.meta["condition"] for e in train}
    interventions = {e.meta["intervention"] for e in train}
    pairs = {(e.meta["condition"], e.meta["intervention"]) for e in train}

    def seen(e) -> bool:
        return e.meta["condition"] in conditions and e.meta["intervention"] in interventions

    groups = {
        "condition never in training": [e for e in examples if e.meta["condition"] not in conditions],
        "... nor its intervention": [
            e for e in examples if e.meta["condition"] not in conditions and e.meta["intervention"] not in interventions
        ],
        "pair in a training review": [e for e in examples if (e.meta["condition"], e.meta["intervention"]) in pairs],
        "new pair (concepts seen apart)": [
            e for e in examples if seen(e) and (e.meta["condition"], e.meta["intervention"]) not in pairs
        ],
    }
    return {name: group for name, group in groups.items() if group}


def by_group(run_dir: Path, recipe: dict) -> dict:
    """Per topic group: its size, each policy's means and the paired tests (``topic_groups``)."""
    from deepretrieval import metrics as M
    from deepretrieval.evaluate import read_runs

    report = {}
    for name, examples in topic_groups(recipe).items():
        qrels = {e.id: dict(e.targets) for e in examples}
        means = {}
        for slug in load_policy_metrics(run_dir / "eval"):
            run = {q: r for q, r in read_runs(run_dir / "eval" / "policies" / slug / "runs.jsonl") if q in qrels}
            per_query = M.evaluate_run(run, qrels, measures_of(run_dir / "eval", LITERATURE_MEASURES))
            means[slug] = {
                m: sum(v[m] for v in per_query.values()) / len(per_query) for m in next(iter(per_query.values()))
            }
        report[name] = {
            "queries": len(examples),
            "means": means,
            "significance": significance(run_dir, recipe, examples=examples),
        }
    return report


def eval_depth(eval_dir: Path) -> int:
    """How deep every policy of the evaluation searched (a cut-off deeper than this was not measured)."""
    depths = {json.loads(p.read_text())["k"] for p in (eval_dir / "policies").glob("*/config.json")}
    if len(depths) != 1:
        raise SystemExit(f"{eval_dir}: policies searched to different depths {sorted(depths)}")
    return depths.pop()


def summarize(run_dir: Path, *, with_ceiling: bool = True) -> dict:
    """learning.json's table for a finished run folder (``make demo``'s runs/demo, or a learning run),
    from its eval folder, training log and recipe: paired significance against RM3 and, for the
    feedback-anchored modes, the oracle ceiling of the mode's action space (``ceilings.py``)."""
    recipe = json.loads((run_dir / "train" / "recipe.json").read_text())
    report = {
        "data": recipe["data"],
        "recipe": recipe,
        "training": training_summary(run_dir / "train" / LOG_FILE),
        "warm_start": read_summary(run_dir / "train" / WARM_START_DIR),
        "policies": load_policy_metrics(run_dir / "eval"),
        "eval_depth": eval_depth(run_dir / "eval"),
        "significance": significance(run_dir, recipe),
    }
    if (selection := read_selection(run_dir / "train" / "final")) is not None:
        report["selection"] = selection
        report["dev_curve"] = dev_curve(run_dir / "train" / LOG_FILE)
    if groups := by_group(run_dir, recipe):
        report["by_topic"] = groups
    if with_ceiling and recipe["mode"] in CEILING_MODES:
        report["ceiling"] = ceiling(
            recipe["data"], "test", recipe["mode"], 30, 10, 5 if recipe["mode"] == "expand-rm3" else 10
        )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data")
    parser.add_argument("--recipe", type=Path, help="a recipe YAML to start from (default: the demo recipe)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe field")
    parser.add_argument("--summarize", action="store_true", help="only write OUT/learning.json from OUT's run")
    args = parser.parse_args()
    if args.summarize:
        previous = json.loads(path.read_text()) if (path := args.out / "learning.json").exists() else {}
        path.write_text(json.dumps({**previous, **summarize(args.out)}, indent=2))
        print(f"wrote {args.out}/learning.json")
        return
    if not args.data and not args.recipe:
        parser.error("--data or --recipe is required (except with --summarize)")
    start = load_recipe(args.recipe, {}) if args.recipe else demo_recipe()
    values = {**start.model_dump(), "data": args.data or start.data, "split": "train"}
    for item in args.set:
        key, _, value = item.partition("=")
        values[key] = yaml.safe_load(value)
    recipe = TrainRecipe(**values)
    started = time.perf_counter()
    baselines = ("original", *recipe.task_family().baselines())  # retrieval: prf; literature: pico-boolean
    result = run_demo(args.out, recipe=recipe, split="test", baselines=baselines)
    elapsed = time.perf_counter() - started
    # GRPO's own time, from the log (train_seconds also holds a warm start trained by this invocation)
    grpo_seconds = sum(r.get("step_time", 0.0) for r in read_log(args.out / "train" / LOG_FILE) if "reward" in r)
    report = {
        "data": recipe.data,
        "recipe": recipe.model_dump(),
        "wall_seconds_total": round(elapsed, 1),
        "train_seconds": round(result.train_seconds, 1),
        "grpo_seconds": round(grpo_seconds, 1),
        "steps_per_second": round(recipe.max_steps / grpo_seconds, 5) if grpo_seconds > 0 else None,
        **summarize(args.out),
    }
    (args.out / "learning.json").write_text(json.dumps(report, indent=2))
    print(result.table)
    print(f"total wall time {elapsed / 60:.1f} min; wrote {args.out}/learning.json")


if __name__ == "__main__":
    main()
