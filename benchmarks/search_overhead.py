"""Our BM25Searcher vs raw bm25s on the same index: batched search of 1,000 queries over 100k documents.

    .venv/bin/python benchmarks/search_overhead.py            # writes benchmarks/results/search_overhead.json

Both sides do the same work a user's call needs: analyse the query texts (bm25s.tokenize with the same
stemmer and stopwords) and retrieve the top k. Ours adds vocabulary mapping, dropping zero-score
documents and turning internal indices into a Ranking (doc ids with scores). Repeats are interleaved; medians reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import bm25s
import Stemmer
from corpus import generated_corpus, generated_queries

from deepretrieval.search.bm25 import BM25Searcher, BM25Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "search_overhead.json")
    args = parser.parse_args()

    started = time.perf_counter()
    documents, vocab = generated_corpus(args.docs)
    queries = generated_queries(args.queries, vocab)
    searcher = BM25Searcher.build(documents, BM25Settings())
    build_seconds = time.perf_counter() - started
    retriever = searcher.retriever  # the very same bm25s index
    stemmer = Stemmer.Stemmer("english")

    def raw() -> None:
        tokens = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)
        retriever.retrieve(tokens, k=args.k, show_progress=False)

    def ours() -> None:
        searcher.search(queries, args.k)

    ours()
    raw()  # warm-up
    times: dict[str, list[float]] = {"raw bm25s": [], "deepretrieval": []}
    for _ in range(args.repeats):
        for name, fn in (("raw bm25s", raw), ("deepretrieval", ours)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    raw_median = statistics.median(times["raw bm25s"])
    our_median = statistics.median(times["deepretrieval"])
    result = {
        "documents": args.docs,
        "queries": args.queries,
        "k": args.k,
        "repeats": args.repeats,
        "index_build_seconds": round(build_seconds, 2),
        "raw_bm25s_median_seconds": round(raw_median, 4),
        "deepretrieval_median_seconds": round(our_median, 4),
        "overhead_percent": round(100 * (our_median / raw_median - 1), 2),
        "all_seconds": {k: [round(x, 4) for x in v] for k, v in times.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
