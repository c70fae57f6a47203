"""The oracle ceiling of a query mode's action space: how far a perfect policy could go, from the judgments.

    .venv/bin/python benchmarks/ceilings.py --data ../shared/data/classic/cranfield
    .venv/bin/python benchmarks/ceilings.py --data ../shared/data/classic/med
    .venv/bin/python benchmarks/ceilings.py --data demo

Mode ``feedback`` (the only one measured here): the policy edits the RM3 query by adding terms from the
menu (the heaviest relevance-model terms of the top feedback documents, at their relevance-model weight)
and dropping RM3's expansion terms. The greedy oracle starts from the unedited RM3 query and, per query,
keeps making the single edit that most improves nDCG@10 + R@100 on the judgments until none does (at most
``--steps`` edits). Every learning table can then say how much of the available room a trained policy
took. Writes ``benchmarks/results/ceiling_feedback_<collection>.json``; figures are pytrec_eval's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from deepretrieval import metrics as M
from deepretrieval.data import load_collection
from deepretrieval.feedback import Feedback, FeedbackProvider, FeedbackSettings
from deepretrieval.tasks import get_task
from deepretrieval.types import Example

MEASURES = ("ndcg@10", "recall@100", "recall@1000")


def objective(ranked: list[str], example: Example) -> float:
    return M.measure("ndcg@10", ranked, example.targets) + M.measure("recall@100", ranked, example.targets)


def greedy_edit(searcher, example: Example, feedback: Feedback, steps: int, k: int) -> tuple[set[str], set[str]]:
    """The edits (added, dropped stems) a greedy oracle makes to RM3 for one query."""
    added: set[str] = set()
    dropped: set[str] = set()
    best = objective(searcher.search_weighted([feedback.weights()], k)[0].ids, example)
    expansion = [t.stem for t in feedback.menu[: feedback.fb_terms]]
    for _ in range(steps):
        candidates = [(added | {t.stem}, dropped) for t in feedback.menu if t.stem not in added | set(expansion)]
        candidates += [(added, dropped | {s}) for s in expansion if s not in dropped]
        if not candidates:
            break
        queries = [feedback.weights(frozenset(a), frozenset(d)) for a, d in candidates]
        scores = [objective(r.ids, example) for r in searcher.search_weighted(queries, k)]
        top = max(range(len(scores)), key=scores.__getitem__)
        if scores[top] <= best + 1e-12:
            break
        best = scores[top]
        added, dropped = set(candidates[top][0]), set(candidates[top][1])
    return added, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--menu-terms", type=int, default=30)
    parser.add_argument("--fb-docs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    collection = load_collection(args.data)
    task = get_task("retrieval")
    searcher = task.backend(collection, {})
    examples = [e for e in collection.split(args.split) if e.relevant]
    settings = FeedbackSettings(fb_docs=args.fb_docs, menu_terms=args.menu_terms)
    shown = FeedbackProvider(searcher, collection.documents, settings)(examples)
    started = time.perf_counter()
    runs: dict[str, dict[str, list[str]]] = {"original": {}, "rm3": {}, "oracle": {}}
    edits = {}
    for example in shown:
        feedback: Feedback = example.meta["feedback"]
        added, dropped = greedy_edit(searcher, example, feedback, args.steps, 1000)
        edits[example.id] = {"added": sorted(added), "dropped": sorted(dropped)}
        runs["original"][example.id] = searcher.search([example.question], 1000)[0].ids
        runs["rm3"][example.id] = searcher.search_weighted([feedback.weights()], 1000)[0].ids
        oracle = feedback.weights(frozenset(added), frozenset(dropped))
        runs["oracle"][example.id] = searcher.search_weighted([oracle], 1000)[0].ids
    qrels = {e.id: dict(e.targets) for e in examples}
    table = {name: M.aggregate(M.evaluate_run(run, qrels, MEASURES)) for name, run in runs.items()}
    report = {
        "data": args.data,
        "split": args.split,
        "queries": len(examples),
        "mode": "feedback",
        "settings": vars(args) | {"out": str(args.out)},
        "seconds": round(time.perf_counter() - started, 1),
        "table": {name: {m: round(v, 4) for m, v in row.items()} for name, row in table.items()},
        "mean_added": sum(len(e["added"]) for e in edits.values()) / len(edits),
        "mean_dropped": sum(len(e["dropped"]) for e in edits.values()) / len(edits),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"ceiling_feedback_{collection.name}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"{collection.name} {args.split} ({len(examples)} judged queries), feedback mode, menu {args.menu_terms}")
    print("| policy | " + " | ".join(MEASURES) + " |")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[m]:.3f}" for m in MEASURES) + " |")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
