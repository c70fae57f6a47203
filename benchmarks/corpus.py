"""A large generated corpus and queries for speed benchmarks (Zipfian vocabulary, deterministic).

A library for the other scripts; run on its own it prints a sample, to see what they search:

    .venv/bin/python benchmarks/corpus.py --docs 3 --queries 3
"""

from __future__ import annotations

import argparse

import numpy as np

from deepretrieval.types import Document


def vocabulary(size: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = set()
    while len(words) < size:
        lengths = rng.integers(4, 10, size=size)
        for n in lengths:
            words.add("".join(rng.choice(letters, size=n)))
            if len(words) >= size:
                break
    return sorted(words)


def zipf_texts(count: int, length: int, vocab: list[str], rng: np.random.Generator) -> list[str]:
    ranks = np.arange(1, len(vocab) + 1)
    p = 1.0 / ranks
    p /= p.sum()
    ids = rng.choice(len(vocab), size=(count, length), p=p)
    words = np.array(vocab)
    return [" ".join(row) for row in words[ids]]


def generated_corpus(docs: int = 100_000, length: int = 60, vocab_size: int = 50_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    vocab = vocabulary(vocab_size, seed)
    texts = zipf_texts(docs, length, vocab, rng)
    return [Document(f"d{i}", "", t) for i, t in enumerate(texts)], vocab


def generated_queries(count: int, vocab: list[str], length: int = 6, seed: int = 1) -> list[str]:
    return zipf_texts(count, length, vocab, np.random.default_rng(seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3, help="documents to print")
    parser.add_argument("--queries", type=int, default=3, help="queries to print")
    args = parser.parse_args()
    documents, vocab = generated_corpus(args.docs)
    for document in documents:
        print(f"{document.id}: {document.contents}")
    for query in generated_queries(args.queries, vocab):
        print(f"query: {query}")


if __name__ == "__main__":
    main()
