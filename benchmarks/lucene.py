"""Lucene BM25 (Anserini, through the optional lucene backend) against bm25s on the classic collections.

    nice -n 19 python benchmarks/lucene.py            # needs `pip install 'deepretrieval[lucene]'`

Both backends index title + text and search every original query with BM25 k1=0.9, b=0.4. They differ in
analysis (bm25s: regex tokens, Snowball English stemmer, bm25s's English stopwords; Anserini: Lucene's
standard tokenizer, Porter stemmer, Lucene's English stopwords), which is the point of measuring.
Declared expectation: |nDCG@10(Lucene) - nDCG@10(bm25s)| <= 0.02 on each collection; prints OK/FAIL per
collection and exits 1 on a FAIL. Writes ``benchmarks/results/lucene.json``; figures are pytrec_eval's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deepretrieval import metrics as M
from deepretrieval.data import load_collection
from deepretrieval.search.bm25 import BM25Searcher, BM25Settings
from deepretrieval.search.lucene import SYNTAX, LuceneSearcher, LuceneSettings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "classic"
MEASURES = ("ndcg@10", "recall@100", "recall@1000")
TOLERANCE = 0.02  # on nDCG@10
K = 1000


def run(searcher, examples) -> tuple[dict[str, list[str]], float]:
    start = time.perf_counter()
    rankings = searcher.search([e.question for e in examples], K)
    seconds = time.perf_counter() - start
    return {e.id: r.ids for e, r in zip(examples, rankings, strict=True)}, seconds


def compare(name: str) -> dict[str, Any]:
    collection = load_collection(DATA / name)
    examples = collection.examples
    qrels = {e.id: e.targets for e in examples}
    bm25 = BM25Searcher.build(collection.documents, BM25Settings(k1=0.9, b=0.4))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        lucene = LuceneSearcher.build(
            collection.documents, LuceneSettings(k1=0.9, b=0.4), directory=Path(folder) / "ix"
        )
        build_seconds = time.perf_counter() - start
        runs = {"bm25s": run(bm25, examples), "lucene": run(lucene, examples)}
        versions = {k: lucene.manifest[k] for k in ("pyserini", "anserini", "lucene", "java")}
        lucene.close()
    scores = {b: M.aggregate(M.evaluate_run(r, qrels, MEASURES)) for b, (r, _) in runs.items()}
    top1 = [runs["bm25s"][0][e.id][:1] == runs["lucene"][0][e.id][:1] for e in examples]
    delta = {m: scores["lucene"][m] - scores["bm25s"][m] for m in MEASURES}
    return {
        "collection": name,
        "documents": len(collection.documents),
        "queries": len(examples),
        "queries_with_lucene_syntax_characters": sum(bool(SYNTAX.search(e.question)) for e in examples),
        "bm25s": {m: round(v, 4) for m, v in scores["bm25s"].items()},
        "lucene": {m: round(v, 4) for m, v in scores["lucene"].items()},
        "lucene_minus_bm25s": {m: round(v, 4) for m, v in delta.items()},
        "top1_agreement": round(sum(top1) / len(top1), 4),
        "search_seconds": {b: round(s, 3) for b, (_, s) in runs.items()},
        "lucene_index_seconds": round(build_seconds, 2),
        "ok": abs(delta["ndcg@10"]) <= TOLERANCE,
        "versions": versions,
    }


def line(row: dict[str, Any]) -> str:
    bm25, lucene, delta = row["bm25s"], row["lucene"], row["lucene_minus_bm25s"]["ndcg@10"]
    return (
        f"{'OK' if row['ok'] else 'FAIL':4} {row['collection']:10} nDCG@10 bm25s {bm25['ndcg@10']:.4f} "
        f"lucene {lucene['ndcg@10']:.4f} (delta {delta:+.4f}, tolerance {TOLERANCE}); "
        f"R@100 bm25s {bm25['recall@100']:.4f} lucene {lucene['recall@100']:.4f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", nargs="+", default=["cranfield", "med"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lucene.json")
    args = parser.parse_args()
    rows = [compare(name) for name in args.collections]
    for row in rows:
        print(line(row))
    result = {"settings": {"k1": 0.9, "b": 0.4, "k": K}, "tolerance_ndcg@10": TOLERANCE, "collections": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
