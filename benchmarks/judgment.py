"""Can the embedded model tell the relevant first-pass results from the others? (what ``select-rm3`` needs)

    .venv/bin/python benchmarks/judgment.py --data ../shared/data/classic/cranfield
    .venv/bin/python benchmarks/judgment.py --data demo

For each judged test query, the top ``--fb-docs`` BM25 results (as the ``select-rm3`` prompt lists them)
are shown to the model one at a time — the query, the result's title and the first ``--words`` words of
its text, "Is the document relevant to the query? Answer Yes or No." — and scored by log P(Yes) − log P(No)
at the answer's first token. Reported: the AUC of that score between the judged relevant and the other
results of a query (0.5 is chance), averaged over queries with both kinds; the AUC of the first-pass rank
for comparison; and RM3 fed back with the results the model ranks highest (top 3, top 5, above the
query's median) against plain RM3. Writes ``benchmarks/results/judgment_<collection>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from deepretrieval import metrics as M
from deepretrieval.data import load_collection
from deepretrieval.feedback import FeedbackSettings, SelectionProvider
from deepretrieval.models import load_model_and_tokenizer
from deepretrieval.tasks import get_task

MEASURES = ("ndcg@10", "recall@100")


def auc(scores: np.ndarray, relevant: np.ndarray) -> float | None:
    """P(a relevant result scores above a non-relevant one), ties counting half; None without both kinds."""
    if not 0 < relevant.sum() < len(relevant):
        return None
    u = mannwhitneyu(scores[relevant], scores[~relevant]).statistic  # the Mann-Whitney U of the relevant ones
    return float(u / (relevant.sum() * (~relevant).sum()))


class Judge:
    def __init__(self, model_name: str) -> None:
        self.model, self.tokenizer = load_model_and_tokenizer(model_name)
        self.model.eval()
        ids = lambda words: [self.tokenizer.encode(w)[0] for w in words]  # noqa: E731
        self.yes, self.no = ids([" yes", "Yes"]), ids([" no", "No"])

    def __call__(self, query: str, document: str) -> float:
        content = f"Query: {query}\nDocument: {document}\nIs the document relevant to the query? Answer Yes or No."
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        with torch.inference_mode():
            logits = self.model(**self.tokenizer(text, return_tensors="pt")).logits[0, -1]
        return float(torch.logsumexp(logits[self.yes], 0) - torch.logsumexp(logits[self.no], 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--fb-docs", type=int, default=10)
    parser.add_argument("--words", type=int, default=40, help="words of each result's text after its title")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    collection = load_collection(args.data)
    task = get_task("retrieval")
    searcher = task.backend(collection, {})
    examples = [e for e in collection.split(args.split) if e.relevant]
    shown = SelectionProvider(searcher, collection.documents, FeedbackSettings(fb_docs=args.fb_docs))(examples)
    text = {
        d.id: " ".join(f"{d.title.strip()}. {' '.join(d.text.split()[: args.words])}".split())
        for d in collection.documents
    }
    judge = Judge(args.model)
    started = time.perf_counter()
    runs: dict[str, dict[str, list[str]]] = {n: {} for n in ("rm3", "model top 3", "model top 5", "model above median")}
    model_aucs, rank_aucs = [], []
    for example in shown:
        selection = example.meta["selection"]
        scores = np.array([judge(example.question, text[d.doc_id]) for d in selection.docs])
        relevant = np.array([example.targets.get(d.doc_id, 0) > 0 for d in selection.docs])
        if (a := auc(scores, relevant)) is not None:
            model_aucs.append(a)
            rank_aucs.append(auc(-np.arange(len(scores), dtype=float), relevant))
        order = [int(i) for i in np.argsort(-scores, kind="stable")]
        choices = {
            "rm3": None,
            "model top 3": sorted(order[:3]),
            "model top 5": sorted(order[:5]),
            "model above median": [i for i, s in enumerate(scores) if s > np.median(scores)],
        }
        for name, chosen in choices.items():
            runs[name][example.id] = searcher.search_weighted([selection.weights(chosen)], 1000)[0].ids
    qrels = {e.id: dict(e.targets) for e in examples}
    report = {
        "data": args.data,
        "collection": collection.name,
        "split": args.split,
        "queries": len(examples),
        "queries_with_both_kinds": len(model_aucs),
        "model": args.model,
        "words": args.words,
        "auc_model": round(float(np.mean(model_aucs)), 4),
        "auc_first_pass_rank": round(float(np.mean(rank_aucs)), 4),
        "table": {
            name: {m: round(v, 4) for m, v in M.aggregate(M.evaluate_run(run, qrels, MEASURES)).items()}
            for name, run in runs.items()
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"judgment_{collection.name}.json"
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("auc_model", "auc_first_pass_rank", "table")}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
