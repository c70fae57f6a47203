"""The oracle ceiling of a query mode's action space: how far a perfect policy could go, from the judgments.

    .venv/bin/python benchmarks/ceilings.py --data ../shared/data/classic/cranfield
    .venv/bin/python benchmarks/ceilings.py --data ../shared/data/classic/med
    .venv/bin/python benchmarks/ceilings.py --data demo
    .venv/bin/python benchmarks/ceilings.py --data demo --mode expand-rm3     # likewise per collection

Mode ``feedback``: the policy edits the RM3 query by adding terms from the
menu (the heaviest relevance-model terms of the top feedback documents, at their relevance-model weight)
and dropping RM3's expansion terms. The greedy oracle starts from the unedited RM3 query and, per query,
keeps making the single edit that most improves nDCG@10 + R@100 on the judgments until none does (at most
``--steps`` edits). Every learning table can then say how much of the available room a trained policy
took. Mode ``expand-rm3``: the policy appends words to the user's query and RM3 runs on the result; its
action space is all text, so the oracle picks, one word at a time (at most ``--steps``), from the menu's
words and the commonest words of the query's judged relevant documents. Mode ``select-rm3``: the policy
names which of the top ``--fb-docs`` first-pass results feed RM3; the greedy oracle starts from all of them
(plain RM3) and toggles one result at a time while that helps; the table adds "judged relevant" (feed back
exactly the results the judgments call relevant: true relevance feedback) and three rules that need no
judgments (the first 3 or 5 results; the results whose title shares two or more of the query's terms).
Writes
``benchmarks/results/ceiling_<mode>_<collection>.json``; figures are pytrec_eval's.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from deepretrieval import metrics as M
from deepretrieval.data import load_collection
from deepretrieval.feedback import WORD, Feedback, FeedbackProvider, FeedbackSettings, SelectionProvider
from deepretrieval.tasks import get_task
from deepretrieval.tasks.retrieval import RM3Query
from deepretrieval.types import Example

MEASURES = ("ndcg@10", "recall@100", "recall@1000")
MODES = ("feedback", "expand-rm3", "select-rm3")


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


def greedy_expansion(searcher, example: Example, candidates: list[str], steps: int, k: int) -> list[str]:
    """The words a greedy oracle appends to the user's query before RM3 runs on it (mode ``expand-rm3``)."""
    task = get_task("retrieval")
    chosen: list[str] = []
    run = lambda texts: task.execute([RM3Query(t) for t in texts], searcher, k)  # noqa: E731
    best = objective(run([example.question])[0].ranking.ids, example)
    for _ in range(steps):
        options = [w for w in candidates if w not in chosen]
        if not options:
            break
        texts = [" ".join([example.question, *chosen, w]) for w in options]
        scores = [objective(o.ranking.ids, example) for o in run(texts)]
        top = max(range(len(scores)), key=scores.__getitem__)
        if scores[top] <= best + 1e-12:
            break
        best = scores[top]
        chosen.append(options[top])
    return chosen


def greedy_selection(searcher, example: Example, selection, steps: int, k: int) -> tuple[int, ...]:
    """The results (0-based) a greedy oracle feeds back to RM3 for one query (mode ``select-rm3``)."""
    chosen = set(range(len(selection.docs)))
    best = objective(searcher.search_weighted([selection.weights()], k)[0].ids, example)
    for _ in range(steps):
        candidates = [sorted(chosen ^ {i}) for i in range(len(selection.docs))]
        candidates = [c for c in candidates if c]
        if not candidates:
            break
        rankings = searcher.search_weighted([selection.weights(c) for c in candidates], k)
        scores = [objective(r.ids, example) for r in rankings]
        top = max(range(len(scores)), key=scores.__getitem__)
        if scores[top] <= best + 1e-12:
            break
        best, chosen = scores[top], set(candidates[top])
    return tuple(sorted(chosen))


def select_ceiling(searcher, collection, examples: list[Example], settings: FeedbackSettings, steps: int):
    """Runs for mode ``select-rm3`` (original, RM3, rules, judged-relevant feedback, the greedy oracle) and
    the oracle's mean number of results kept."""
    shown = SelectionProvider(searcher, collection.documents, settings)(examples)
    rules = ("first 3", "first 5", "sharing 2+ query words")
    runs: dict[str, dict[str, list[str]]] = {n: {} for n in ("original", "rm3", *rules, "judged relevant", "oracle")}
    sizes = []
    for example in shown:
        selection = example.meta["selection"]
        words = set(searcher.analyze(example.question))
        chosen_by_rule = {
            "first 3": [0, 1, 2],
            "first 5": [0, 1, 2, 3, 4],
            "sharing 2+ query words": [
                i for i, d in enumerate(selection.docs) if len(words & set(searcher.analyze(d.snippet))) >= 2
            ],
        }
        for rule, chosen in chosen_by_rule.items():  # no judgments needed: what a rule could do
            chosen = [i for i in chosen if i < len(selection.docs)]
            runs[rule][example.id] = searcher.search_weighted([selection.weights(chosen)], 1000)[0].ids
        runs["original"][example.id] = searcher.search([example.question], 1000)[0].ids
        runs["rm3"][example.id] = searcher.search_weighted([selection.weights()], 1000)[0].ids
        relevant = [i for i, d in enumerate(selection.docs) if example.targets.get(d.doc_id, 0) > 0]
        runs["judged relevant"][example.id] = (
            searcher.search_weighted([selection.weights(relevant)], 1000)[0].ids
            if relevant
            else runs["original"][example.id]  # nothing relevant to feed back: the user's query
        )
        chosen = greedy_selection(searcher, example, selection, steps, 1000)
        sizes.append(len(chosen))
        runs["oracle"][example.id] = searcher.search_weighted([selection.weights(chosen)], 1000)[0].ids
    return runs, {"mean_selected": round(sum(sizes) / len(sizes), 2)}


def edit_ceiling(
    task, searcher, collection, examples: list[Example], settings: FeedbackSettings, mode: str, steps: int
):
    """Runs for modes ``feedback`` and ``expand-rm3`` (original, RM3, the greedy oracle) and the oracle's mean
    edits."""
    shown = FeedbackProvider(searcher, collection.documents, settings)(examples)
    documents = {d.id: d for d in collection.documents}
    runs: dict[str, dict[str, list[str]]] = {"original": {}, "rm3": {}, "oracle": {}}
    edits = {}
    for example in shown:
        feedback: Feedback = example.meta["feedback"]
        runs["original"][example.id] = searcher.search([example.question], 1000)[0].ids
        runs["rm3"][example.id] = searcher.search_weighted([feedback.weights()], 1000)[0].ids
        if mode == "feedback":
            added, dropped = greedy_edit(searcher, example, feedback, steps, 1000)
            edits[example.id] = {"added": sorted(added), "dropped": sorted(dropped)}
            oracle = searcher.search_weighted([feedback.weights(frozenset(added), frozenset(dropped))], 1000)[0]
        else:
            candidates = expansion_candidates(searcher, example, feedback, documents, settings.menu_terms)
            words = greedy_expansion(searcher, example, candidates, steps, 1000)
            edits[example.id] = {"added": words, "dropped": []}
            oracle = task.execute([RM3Query(" ".join([example.question, *words]))], searcher, 1000)[0].ranking
        runs["oracle"][example.id] = oracle.ids
    return runs, {
        "mean_added": sum(len(e["added"]) for e in edits.values()) / len(edits),
        "mean_dropped": sum(len(e["dropped"]) for e in edits.values()) / len(edits),
    }


def expansion_candidates(searcher, example: Example, feedback: Feedback, documents: dict, n: int) -> list[str]:
    """The menu's words and the ``n`` commonest words of the judged relevant documents (an oracle may read
    the judgments): what a policy could have written, at best."""
    counts: Counter[str] = Counter()
    for doc_id, grade in example.targets.items():
        if grade > 0 and doc_id in documents:
            # distinct words in first-seen order (not a set's hash order), so that ties in most_common repeat
            counts.update(list(dict.fromkeys(WORD.findall(documents[doc_id].contents.lower()))))
    analysed = [w for w, _ in counts.most_common(4 * n) if searcher.analyze(w)][:n]
    return list(dict.fromkeys([t.word for t in feedback.menu] + analysed))


def ceiling(data: str, split: str, mode: str, menu_terms: int, fb_docs: int, steps: int) -> dict:
    """Original, RM3 and the greedy oracle of ``mode``'s action space on ``split``'s judged queries."""
    collection = load_collection(data)
    task = get_task("retrieval")
    searcher = task.backend(collection, {})
    examples = [e for e in collection.split(split) if e.relevant]
    settings = FeedbackSettings(fb_docs=fb_docs, menu_terms=menu_terms)
    started = time.perf_counter()
    if mode == "select-rm3":
        runs, stats = select_ceiling(searcher, collection, examples, settings, steps)
    else:
        runs, stats = edit_ceiling(task, searcher, collection, examples, settings, mode, steps)
    qrels = {e.id: dict(e.targets) for e in examples}
    table = {name: M.aggregate(M.evaluate_run(run, qrels, MEASURES)) for name, run in runs.items()}
    return {
        "data": data,
        "collection": collection.name,
        "split": split,
        "queries": len(examples),
        "mode": mode,
        "settings": {"menu_terms": menu_terms, "fb_docs": fb_docs, "steps": steps},
        "seconds": round(time.perf_counter() - started, 1),
        "table": {name: {m: round(v, 4) for m, v in row.items()} for name, row in table.items()},
        **stats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--mode", choices=MODES, default="feedback")
    parser.add_argument("--menu-terms", type=int, default=30)
    parser.add_argument("--fb-docs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=None, help="edits per query (default: feedback 10, expand-rm3 5)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    steps = args.steps or (5 if args.mode == "expand-rm3" else 10)
    report = ceiling(args.data, args.split, args.mode, args.menu_terms, args.fb_docs, steps)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"ceiling_{args.mode.replace('-', '_')}_{report['collection']}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"{report['collection']} {args.split} ({report['queries']} judged queries), mode {args.mode}")
    print("| policy | " + " | ".join(MEASURES) + " |")
    for name, row in report["table"].items():
        print(f"| {name} | " + " | ".join(f"{row[m]:.3f}" for m in MEASURES) + " |")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
