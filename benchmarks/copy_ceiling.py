"""What the learning recipe can reach by copying alone: the user's query plus the context titles, verbatim.

    .venv/bin/python benchmarks/copy_ceiling.py --data ../shared/data/classic/cranfield
    .venv/bin/python benchmarks/copy_ceiling.py --data ../shared/data/classic/med
    .venv/bin/python benchmarks/copy_ceiling.py --data demo

The learning benchmark's policy sees the titles of the top ``context_docs`` first-pass hits and writes text
appended to the user's query (expand mode). This scores, with no model, the policy that appends exactly
those titles after repeating the user's query ``r`` times — next to the original query and PRF on the same
split — so a trained policy's figures can be read against what verbatim copying already gives.
Writes benchmarks/results/copy_ceiling_<collection>.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from deepretrieval.data import load_collection
from deepretrieval.evaluate import evaluate
from deepretrieval.modes import compose_query
from deepretrieval.policies import make_policy
from deepretrieval.policies.base import PolicyOutput
from deepretrieval.search.bm25 import BM25Searcher, BM25Settings
from deepretrieval.titles import TitleProvider
from deepretrieval.types import Example


class CopyContextPolicy:
    """Expand mode with the context titles as the 'generated' text."""

    def __init__(self, context: TitleProvider, repeats: int) -> None:
        self.context, self.repeats = context, repeats
        self.name = f"copy {context.n_docs} titles, query x{repeats}"

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]:
        return [
            PolicyOutput(query=compose_query("expand", e.question, " ".join(e.meta["titles"]), repeats=self.repeats))
            for e in self.context(examples)
        ]

    def describe(self) -> dict[str, object]:
        return {"policy": self.name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--context-docs", type=int, default=3)
    parser.add_argument("--repeats", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    collection = load_collection(args.data)
    searcher = BM25Searcher.build(collection.documents, BM25Settings())
    context = TitleProvider(searcher, collection.documents, args.context_docs)
    policies = [make_policy("original", searcher=searcher), make_policy("prf", searcher=searcher)]
    policies += [CopyContextPolicy(context, r) for r in args.repeats]
    with tempfile.TemporaryDirectory() as tmp:
        results = evaluate(collection, args.split, policies, searcher, Path(tmp))
    table = {r.metrics["policy"]: {k: r.metrics[k] for k in ("ndcg@10", "recall@100", "queries")} for r in results}
    out = args.out or Path(__file__).parent / "results" / f"copy_ceiling_{collection.name}.json"
    out.write_text(json.dumps({"data": args.data, "split": args.split, "policies": table}, indent=2))
    for name, m in table.items():
        print(f"{name:28s} nDCG@10 {m['ndcg@10']:.3f}  R@100 {m['recall@100']:.3f}  ({m['queries']} queries)")


if __name__ == "__main__":
    main()
