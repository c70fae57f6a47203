"""Reward throughput: scoring 256 GRPO completions against a 100k-document BM25 index, batched vs per sample.

    .venv/bin/python benchmarks/reward_throughput.py      # writes benchmarks/results/reward_throughput.json

The batch is 16 prompts x 16 completions, as a GRPO step sees it. "batched" is the trainer's path: one
call scores the whole batch with one de-duplicated bm25s search. "per-sample" calls the same reward
function once per completion (what a naive reward loop does). Run twice: with every completion distinct,
and with the duplication sampling really produces (here: half the completions repeat another). The reward is
the retrieval task's TRL adapter (``tasks.TaskReward``) as the measured run used it: direct variant, rewrite
mode, no context titles.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from corpus import generated_corpus, generated_queries

from deepretrieval.prompts import PromptSettings
from deepretrieval.rewards import PRESETS
from deepretrieval.search.bm25 import BM25Searcher
from deepretrieval.tasks import TaskReward, get_task
from deepretrieval.types import Example

# The settings of the committed run (the reward class's defaults then): completions are whole rewrites.
SETTINGS = PromptSettings(variant="direct", mode="rewrite", context_docs=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--generations", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "reward_throughput.json")
    args = parser.parse_args()

    documents, vocab = generated_corpus(args.docs)
    searcher = BM25Searcher.build(documents)
    rng = np.random.default_rng(0)
    examples = [
        Example(f"q{i}", q, {f"d{j}": 1 for j in rng.choice(args.docs, size=20, replace=False)})
        for i, q in enumerate(generated_queries(args.prompts, vocab))
    ]
    reward = TaskReward(get_task("retrieval"), searcher, examples, PRESETS["recall"], SETTINGS)
    n = args.prompts * args.generations
    ids = [e.id for e in examples for _ in range(args.generations)]
    distinct = [f'{q}"}}</answer>' for q in generated_queries(n, vocab, seed=7)]
    duplicated = [distinct[i // 2 * 2] for i in range(n)]  # every second completion repeats the one before

    result: dict[str, object] = {"documents": args.docs, "completions": n, "repeats": args.repeats}
    for label, completions in (("distinct", distinct), ("half_duplicates", duplicated)):
        batched, looped = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            a = reward([""] * n, completions, example_id=ids)
            batched.append(time.perf_counter() - t)
            t = time.perf_counter()
            b = [reward([""], [c], example_id=[i])[0] for c, i in zip(completions, ids, strict=True)]
            looped.append(time.perf_counter() - t)
            assert a == b, "batched and per-sample rewards differ"
        result[label] = {
            "batched_median_seconds": round(statistics.median(batched), 4),
            "per_sample_median_seconds": round(statistics.median(looped), 4),
            "speedup": round(statistics.median(looped) / statistics.median(batched), 2),
            "completions_per_second_batched": round(n / statistics.median(batched), 1),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
