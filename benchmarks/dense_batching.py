"""Why batching query encoding gives ~2.5×, not more, on 2 CPU cores: a batch-size sweep and one call's cost.

    .venv/bin/python benchmarks/dense_batching.py    # -> benchmarks/results/dense_batching.json (~2 min)

Every query of Cranfield (225) and MED (30), encoded by the embedded all-MiniLM-L6-v2 (the dense backend's
``Encoder``, normalised, the model's own prompts): once per call (one at a time), then in one call at each
``batch_size`` (sentence-transformers sorts the texts by length and pads within a batch). Also one query's
call split into tokenizing and the forward pass, and the rate of useful arithmetic each way
(~2 × 10.6 M non-embedding weights FLOPs per token): if batching already runs the forward pass near the
cores' arithmetic rate, per-call overhead is all it can save. Corpus encoding (Cranfield's first 384
documents) at batch 16 and 64. Finally what the reward does with a GRPO
batch — 256 completions, 128 distinct (Cranfield queries), one ``DenseSearcher.search`` call that
de-duplicates and encodes in batches — against one search call per completion (a flat index of the
collection's size; random vectors, the search cost does not depend on them). Run it on an idle host.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from deepretrieval.data import load_collection
from deepretrieval.search.dense import DenseSearcher, DenseSettings, Encoder, make_index

COLLECTIONS = {"cranfield": "../shared/data/classic/cranfield", "med": "../shared/data/classic/med"}
BATCH_SIZES = (1, 4, 8, 16, 32, 64, 256)


def rate(action, count: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return count / best


def main() -> None:
    here = Path(__file__).parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=here / "results" / "dense_batching.json")
    args = parser.parse_args()
    encoder = Encoder.load(DenseSettings())
    model = encoder.model
    transformer = model[0].auto_model
    flops_per_token = 2 * sum(
        p.numel() for n, p in transformer.named_parameters() if "embeddings" not in n and p.dim() == 2
    )
    # The default batch size is recorded so that render.py marks the column the library really uses.
    report: dict = {
        "torch_threads": torch.get_num_threads(),
        "flops_per_token": flops_per_token,
        "default_batch_size": DenseSettings().batch_size,
    }
    for name, path in COLLECTIONS.items():
        collection = load_collection(here.parent / path)  # relative to the repository, wherever it is run from
        queries = [e.question for e in collection.examples]
        tokens = [len(model.tokenizer(q)["input_ids"]) for q in queries]
        encoder.queries(queries[:8])  # warm up
        encoder.batch_size = 16
        single = rate(lambda qs=queries: [encoder.queries([q]) for q in qs], len(queries), repeats=2)
        batched = {}
        for size in BATCH_SIZES:
            encoder.batch_size = size
            batched[size] = rate(lambda qs=queries: encoder.queries(qs), len(queries))
        encoder.batch_size = DenseSettings().batch_size
        features = model.tokenize([queries[0]])
        started = time.perf_counter()
        for _ in range(50):
            model.tokenize([queries[0]])
        tokenize_ms = (time.perf_counter() - started) / 50 * 1000
        with torch.inference_mode():
            model.forward(dict(features))
            started = time.perf_counter()
            for _ in range(50):
                model.forward(dict(features))
            forward_ms = (time.perf_counter() - started) / 50 * 1000
        best = max(batched, key=batched.get)
        mean_tokens = float(np.mean(tokens))
        report[name] = {
            "queries": len(queries),
            "tokens_mean": round(mean_tokens, 1),
            "tokens_max": max(tokens),
            "queries_per_second_one_at_a_time": round(single, 1),
            "queries_per_second_by_batch_size": {str(k): round(v, 1) for k, v in batched.items()},
            "best_batch_size": best,
            "speedup_best_batch": round(batched[best] / single, 2),
            "speedup_default_batch": round(batched[DenseSettings().batch_size] / single, 2),
            "one_call_tokenize_ms": round(tokenize_ms, 2),
            "one_call_forward_ms": round(forward_ms, 2),
            "one_call_tokens": len(features["input_ids"][0]),
            "gflops_one_at_a_time": round(single * mean_tokens * flops_per_token / 1e9, 1),
            "gflops_best_batch": round(batched[best] * mean_tokens * flops_per_token / 1e9, 1),
        }
        if name == "cranfield":
            documents = [d.contents for d in collection.documents[:384]]
            report[name]["corpus_docs_per_second_by_batch_size"] = {}
            for size in (16, 64):
                encoder.batch_size = size
                docs_rate = rate(lambda ds=documents: encoder.documents(ds), len(documents), repeats=1)
                report[name]["corpus_docs_per_second_by_batch_size"][str(size)] = round(docs_rate, 1)
            encoder.batch_size = DenseSettings().batch_size
            settings = DenseSettings()
            vectors = np.random.default_rng(0).standard_normal((1400, encoder.dimension)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            ids = [f"d{i}" for i in range(len(vectors))]
            searcher = DenseSearcher(encoder, make_index(vectors, settings), ids, settings, "", {})
            grpo = [queries[i % 128] for i in range(256)]
            per_completion = rate(lambda g=grpo, s=searcher: [s.search([q], 100) for q in g], 1, repeats=1)
            one_call = rate(lambda g=grpo, s=searcher: s.search(g, 100), 1)
            report[name]["grpo_batch_256"] = {
                "distinct": len(set(grpo)),
                "seconds_one_call": round(1 / one_call, 3),
                "seconds_one_call_per_completion": round(1 / per_completion, 3),
                "speedup": round(one_call / per_completion, 2),
            }
        print(name, json.dumps(report[name]), flush=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
