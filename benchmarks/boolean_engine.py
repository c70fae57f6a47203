"""The Boolean engine (tantivy, PubMed syntax) beside bm25s bag-of-words on the same 100k-record corpus.

    nice -n 10 .venv/bin/python benchmarks/boolean_engine.py   # writes benchmarks/results/boolean_engine.json

The corpus is generated (Zipfian vocabulary from corpus.py): a 12-word title, a 150-word abstract, 2-6 MeSH
headings of 1-3 words from 5,000, 1-2 of 20 publication types and a date in 1950-2024 (2% undated).
Queries mix the shapes literature searches use: PICO blocks of ORed synonyms ANDed together (with
truncation), tagged terms with NOT, phrases taken from the corpus, MeSH and publication-type filters; half
carry a date window. Both engines return the top k = 3,000 (the DeepRetrieval reward's depth); bm25s gets
each query's words as a bag. Times are medians of interleaved repeats of the whole batch, one batch call
per engine (one tantivy searcher per batch).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
from corpus import vocabulary, zipf_texts

from deepretrieval.search.bm25 import BM25Searcher
from deepretrieval.search.boolean import BooleanIndex, BooleanRequest
from deepretrieval.types import Document, Ranking

PUBLICATION_TYPES = [f"Type {name}" for name in "abcdefghijklmnopqrst"]


def records(count: int, vocab: list[str], rng: np.random.Generator) -> list[Document]:
    titles = zipf_texts(count, 12, vocab, rng)
    abstracts = zipf_texts(count, 150, vocab, rng)
    headings = [" ".join(rng.choice(vocab[:3000], size=rng.integers(1, 4))) for _ in range(5000)]
    heading_p = 1.0 / np.arange(1, len(headings) + 1)
    heading_p /= heading_p.sum()
    first = datetime.date(1950, 1, 1).toordinal()
    days = rng.integers(0, 75 * 365, size=count)
    documents = []
    for i in range(count):
        mesh = tuple(headings[j] for j in rng.choice(len(headings), size=rng.integers(2, 7), p=heading_p))
        types = tuple(rng.choice(PUBLICATION_TYPES, size=rng.integers(1, 3), replace=False))
        date = None if rng.random() < 0.02 else datetime.date.fromordinal(first + int(days[i]))
        fields = {"mesh": mesh, "publication_types": types}
        documents.append(Document(f"pmid{i}", titles[i], abstracts[i], fields, date))
    return documents


def queries(count: int, vocab: list[str], documents: list[Document], rng: np.random.Generator) -> list[tuple]:
    """(shape, request) pairs. ANDed words are frequent (Zipf ranks 5-300) and ORed synonyms rarer (to 1,000),
    so that totals range from a handful to tens of thousands, as literature searches do."""

    def word(top: int = 300) -> str:
        return vocab[int(rng.integers(5, top))]

    def prefix() -> str:
        return word(1000)[:5] + "*"

    def phrase() -> str:
        words = documents[int(rng.integers(len(documents)))].text.split()
        start = int(rng.integers(len(words) - 1))
        return f'"{words[start]} {words[start + 1]}"'

    def heading_word() -> str:
        mesh = documents[int(rng.integers(len(documents)))].fields["mesh"]
        return str(rng.choice(mesh[0].split()))

    def publication_type() -> str:
        return str(rng.choice(PUBLICATION_TYPES))

    def block(size: int) -> str:
        return "(" + " OR ".join(prefix() if rng.random() < 0.3 else word(1000) for _ in range(size)) + ")"

    shapes: dict[str, Callable[[], str]] = {
        "pico blocks": lambda: " AND ".join(block(int(rng.integers(3, 6))) for _ in range(3)),
        "tagged NOT": lambda: f"{word()}[tiab] AND {word()}[tiab] NOT {word()}[ti]",
        "phrases": lambda: f"{phrase()}[tiab] OR {phrase()} OR {word()} AND {word()}",
        "mesh + pt": lambda: f'{heading_word()}[mh] AND ({word()} OR {word()}) AND "{publication_type()}"[pt]',
        "truncation": lambda: f"{prefix()}[tiab] AND {prefix()} NOT {prefix()}[ab]",
    }
    names = list(shapes)
    out = []
    for i in range(count):
        name = names[i % len(names)]
        window = i % 2 == 0
        low = datetime.date(int(rng.integers(1950, 1990)), 1, 1) if window else None
        high = datetime.date(int(rng.integers(1995, 2025)), 12, 31) if window else None
        out.append((name, BooleanRequest(shapes[name](), low, high)))
    return out


def bag_of_words(query: str) -> str:
    """The query's words for bm25s: no operators, tags, quotes or '*'."""
    query = re.sub(r"\[[^\]]*\]", " ", query)
    return " ".join(w for w in re.findall(r"[A-Za-z0-9]+", query) if w not in ("AND", "OR", "NOT"))


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def folder_megabytes(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "boolean_engine.json")
    parser.add_argument("--index-dir", type=Path, default=Path("/tmp/deepretrieval-boolean-bench"))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    started = time.perf_counter()
    vocab = vocabulary(50_000)
    documents = records(args.docs, vocab, rng)
    generate_seconds = time.perf_counter() - started
    workload = queries(args.queries, vocab, documents, np.random.default_rng(1))
    requests = [request for _, request in workload]
    bags = [bag_of_words(request.query) for request in requests]

    started = time.perf_counter()
    engine = BooleanIndex.build(documents, progress=lambda done, total: None)
    boolean_build = time.perf_counter() - started
    save_seconds = timed(lambda: engine.save(args.index_dir))
    load_seconds = timed(lambda: BooleanIndex.load(args.index_dir))
    started = time.perf_counter()
    bm25 = BM25Searcher.build(documents)
    bm25_build = time.perf_counter() - started

    results = engine.search(requests, args.k)  # warm-up, and the result statistics
    bm25.search(bags, args.k)
    failed = [r for r in results if not isinstance(r, Ranking)]
    if failed:
        raise SystemExit(f"{len(failed)} benchmark queries were rejected, e.g. {failed[0]}")
    totals = [r.total or 0 for r in results]
    times: dict[str, list[float]] = {"boolean": [], "bm25": []}
    for _ in range(args.repeats):
        times["boolean"].append(timed(lambda: engine.search(requests, args.k)))
        times["bm25"].append(timed(lambda: bm25.search(bags, args.k)))
    by_shape = {}
    for name in dict.fromkeys(shape for shape, _ in workload):
        chosen = [request for shape, request in workload if shape == name]
        seconds = statistics.median(timed(lambda c=chosen: engine.search(c, args.k)) for _ in range(args.repeats))
        shape_totals = [t for (shape, _), t in zip(workload, totals, strict=True) if shape == name]
        by_shape[name] = {
            "queries": len(chosen),
            "queries_per_second": round(len(chosen) / seconds, 1),
            "median_total": int(statistics.median(shape_totals)),
            "example": chosen[0].query,
        }

    boolean_median = statistics.median(times["boolean"])
    bm25_median = statistics.median(times["bm25"])
    result = {
        "documents": args.docs,
        "queries": args.queries,
        "k": args.k,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "versions": {"tantivy": version("tantivy"), "bm25s": version("bm25s")},
        "generate_seconds": round(generate_seconds, 1),
        "boolean": {
            "build_seconds": round(boolean_build, 1),
            "save_seconds": round(save_seconds, 2),
            "load_seconds": round(load_seconds, 3),
            "index_megabytes": folder_megabytes(args.index_dir),
            "segments": engine._index.searcher().num_segments,
            "batch_median_seconds": round(boolean_median, 3),
            "queries_per_second": round(args.queries / boolean_median, 1),
            "median_total_matches": int(statistics.median(totals)),
            "share_of_queries_over_k": round(sum(t > args.k for t in totals) / len(totals), 3),
            "by_shape": by_shape,
        },
        "bm25s_bag_of_words": {
            "build_seconds": round(bm25_build, 1),
            "batch_median_seconds": round(bm25_median, 3),
            "queries_per_second": round(args.queries / bm25_median, 1),
        },
        "all_seconds": {name: [round(x, 3) for x in values] for name, values in times.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)


def print_table(result: dict) -> None:
    b, m = result["boolean"], result["bm25s_bag_of_words"]
    print(f"{result['documents']:,} records, {result['queries']} queries, top {result['k']:,}, {result['cpus']} CPUs")
    print(f"{'engine':<28}{'build s':>10}{'queries/s':>12}")
    print(f"{'tantivy Boolean (PubMed)':<28}{b['build_seconds']:>10}{b['queries_per_second']:>12}")
    print(f"{'bm25s bag of words':<28}{m['build_seconds']:>10}{m['queries_per_second']:>12}")
    print(f"\n{'Boolean shape':<16}{'queries/s':>12}{'median total':>15}")
    for name, row in b["by_shape"].items():
        print(f"{name:<16}{row['queries_per_second']:>12}{row['median_total']:>15}")
    print(
        f"\nindex {b['index_megabytes']} MB, save {b['save_seconds']} s, load {b['load_seconds']} s; "
        f"{b['share_of_queries_over_k']:.0%} of queries match more than k"
    )


if __name__ == "__main__":
    main()
