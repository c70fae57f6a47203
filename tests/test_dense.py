"""The dense (sentence-transformers + faiss) and hybrid (RRF by ranx) backends of the retrieval task.

The encoder is a real sentence-transformers model, built in-process: a static-embedding model (the mean of
seeded random word vectors) over a word vocabulary, with query and document prompts in its config. It
loads in milliseconds, and a text's nearest neighbour is the text that shares most of its words.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from deepretrieval.errors import CorruptIndexError, DeepRetrievalError, StaleIndexError
from deepretrieval.rewards import PRESETS
from deepretrieval.search.bm25 import BM25Searcher, BM25Settings
from deepretrieval.search.dense import DenseSearcher, DenseSettings, Encoder, encode_corpus
from deepretrieval.search.hybrid import HybridSearcher, HybridSettings
from deepretrieval.tasks import get_task
from deepretrieval.tasks.retrieval import RM3Query
from deepretrieval.types import Collection, Document, Ranking

from .conftest import retrieval_reward
from .test_search import assert_same_top_10_at_every_k

ROOT = Path(__file__).resolve().parents[1]
WORDS = re.compile(r"\w+")


def tiny_model(folder: Path, texts: Sequence[str], *, seed: int = 0, dimension: int = 48) -> Path:
    """Save a static-embedding sentence-transformers model whose vocabulary is the words of ``texts``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    words = sorted({w for t in texts for w in WORDS.findall(t.lower())} | {"query", "passage"})
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}, "[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    weights = torch.randn(len(words) + 1, dimension, generator=torch.Generator().manual_seed(seed))
    model = SentenceTransformer(
        modules=[StaticEmbedding(tokenizer, embedding_weights=weights)],
        prompts={"query": "query: ", "document": "passage: "},
        device="cpu",
    )
    model.save(str(folder))
    return folder


def synthetic_corpus(n: int, *, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(300)]
    return [Document(f"d{i:03d}", "", " ".join(rng.sample(vocabulary, 12))) for i in range(n)]


@pytest.fixture(scope="module")
def corpus() -> list[Document]:
    return synthetic_corpus(120)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, corpus) -> Path:
    texts = [d.contents for d in corpus] + [
        "myocardial infarction therapy aspirin thrombolysis mortality acute hypertension drugs angiotensin",
        "inhibitors lower blood pressure kidney stones nephrolithiasis ureteral calculi lithotripsy heart",
        "health walking good diet vegetables fruit fibre attack treatment high medicine death outcomes",
    ]
    return tiny_model(tmp_path_factory.mktemp("tiny-st"), texts)


@pytest.fixture(scope="module")
def settings(model_dir) -> DenseSettings:
    return DenseSettings(model=str(model_dir))


@pytest.fixture(scope="module")
def searcher(corpus, settings) -> DenseSearcher:
    return DenseSearcher.build(corpus, settings)


class CountingEncoder:
    """Wraps an Encoder: counts query and document encodes; ``fail_after`` document encodes, raises."""

    def __init__(self, inner: Encoder, fail_after: int | None = None) -> None:
        self.inner, self.fail_after = inner, fail_after
        self.query_calls: list[list[str]] = []
        self.document_calls: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def queries(self, texts):
        self.query_calls.append(list(texts))
        return self.inner.queries(texts)

    def documents(self, texts):
        if self.fail_after is not None and len(self.document_calls) >= self.fail_after:
            raise KeyboardInterrupt("interrupted")
        self.document_calls.append(len(texts))
        return self.inner.documents(texts)


def near_duplicate(text: str) -> str:
    words = text.split()
    return " ".join(words[:5] + words[6:])


# -- dense search ------------------------------------------------------------------------------------


def test_a_query_retrieves_its_near_duplicate_first(corpus, searcher):
    rankings = searcher.search([near_duplicate(d.text) for d in corpus], 10)
    assert [r.ids[0] for r in rankings] == [d.id for d in corpus]
    for ranking in rankings:
        assert len(ranking) == 10
        assert ranking.scores == sorted(ranking.scores, reverse=True)
        assert ranking.scores[0] <= 1.0 + 1e-5  # normalised: inner product is cosine


def test_the_models_own_prompts_are_used_unless_overridden(model_dir, corpus):
    from sentence_transformers import SentenceTransformer

    raw = SentenceTransformer(str(model_dir), device="cpu")
    encoder = Encoder.load(DenseSettings(model=str(model_dir)))
    assert encoder.prompts == {"query": "query: ", "document": "passage: "}
    expected = raw.encode(["query: w1 w2 w3"], normalize_embeddings=True)
    np.testing.assert_allclose(encoder.queries(["w1 w2 w3"]), expected, atol=1e-6)
    plain = Encoder.load(DenseSettings(model=str(model_dir), query_prompt=""))
    assert plain.prompts["query"] == ""
    np.testing.assert_allclose(plain.queries(["w1 w2"]), raw.encode(["w1 w2"], normalize_embeddings=True), atol=1e-6)


def test_one_encode_per_batch_whatever_its_duplicates(corpus, searcher):
    counting = CountingEncoder(searcher.encoder)
    dense = DenseSearcher(counting, searcher.index, list(searcher.doc_ids), searcher.settings, "x", {})
    queries = [near_duplicate(corpus[i % 40].text) for i in range(256)] + ["!!!", ""]
    rankings = dense.search(queries, 5)
    assert len(counting.query_calls) == 1
    assert sorted(counting.query_calls[0]) == sorted({near_duplicate(corpus[i].text) for i in range(40)})
    assert rankings[0] == rankings[40] and rankings[0].ids[0] == corpus[0].id
    assert rankings[-2] == Ranking() and rankings[-1] == Ranking()  # nothing to encode: an empty ranking


def test_a_grpo_reward_batch_is_one_encode(small_collection, model_dir):
    inner = Encoder.load(DenseSettings(model=str(model_dir)))
    counting = CountingEncoder(inner)
    dense = DenseSearcher.build(small_collection.documents, DenseSettings(model=str(model_dir)), encoder=counting)
    reward = retrieval_reward(dense, small_collection.examples, PRESETS["recall"])
    completions = [f'{q}"}}</answer>' for q in ("kidney stones", "heart attack", "kidney stones", "aspirin")] * 64
    totals = reward([""] * len(completions), completions, example_id=["q3", "q1", "q3", "q1"] * 64)
    assert len(counting.query_calls) == 1 and len(counting.query_calls[0]) == 3
    assert all(t is not None for t in totals)


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_indexes_agree_with_flat_on_top1(corpus, settings, searcher, index_type):
    from dataclasses import replace

    other = DenseSearcher.build(corpus, replace(settings, index_type=index_type, nlist=3, nprobe=3))
    queries = [near_duplicate(d.text) for d in corpus] + ["w1 w2 w3", "w250 w7"]
    flat = [r.ids[0] for r in searcher.search(queries, 10)]
    assert [r.ids[0] for r in other.search(queries, 10)] == flat
    assert other.describe()["index_type"] == index_type


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> tuple[list[Document], Path]:
    """1,200 documents, each of 300 texts four times at rows far apart: copies score exactly the same, so
    every cut falls inside runs of ties. With a static-embedding model over their words."""
    texts = [d.text for d in synthetic_corpus(300, seed=1)]
    documents = [Document(f"c{i:04d}", "", texts[(i * 7) % 300]) for i in range(1200)]
    return documents, tiny_model(tmp_path_factory.mktemp("copies-st"), texts)


def copy_queries(documents: Sequence[Document]) -> list[str]:
    rng = random.Random(2)
    words = sorted({w for d in documents for w in d.text.split()})
    return [near_duplicate(d.text) for d in documents[:30]] + [" ".join(rng.sample(words, 3)) for _ in range(20)]


@pytest.mark.parametrize("index_type", ["flat", "ivf"])
def test_dense_top_10_is_the_same_at_every_k(copies, index_type):
    documents, model = copies
    dense = DenseSearcher.build(documents, DenseSettings(model=str(model), index_type=index_type, nlist=4, nprobe=4))
    rows = {d.id: i for i, d in enumerate(documents)}
    queries = copy_queries(documents)
    assert_same_top_10_at_every_k(lambda k: dense.search(queries, k), rows, min_ties=10)


@pytest.mark.slow  # ranx's numba code: compiled on first use in a fresh venv (~40 s here), then cached
def test_hybrid_top_10_is_the_same_at_every_k(copies):
    documents, model = copies
    dense = DenseSearcher.build(documents, DenseSettings(model=str(model)))
    hybrid = HybridSearcher(BM25Searcher.build(documents), dense, HybridSettings(rrf_k=60, depth=100))
    rows = {d.id: i for i, d in enumerate(documents)}
    queries = copy_queries(documents)
    assert_same_top_10_at_every_k(lambda k: hybrid.search(queries, k), rows)


# -- saving, staleness, resumable builds --------------------------------------------------------------


def test_save_load_round_trip_and_stale_indexes_are_refused(tmp_path, corpus, settings, searcher, model_dir):
    from dataclasses import replace

    searcher.save(tmp_path / "index")
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["kind"] == "dense" and manifest["documents"] == len(corpus)
    assert manifest["model"]["prompts"] == {"query": "query: ", "document": "passage: "}
    assert {"sentence-transformers", "faiss-cpu", "torch"} <= set(manifest["versions"])
    loaded = DenseSearcher.load(tmp_path / "index", expected_corpus_hash=searcher.corpus_sha, settings=settings)
    queries = [near_duplicate(d.text) for d in corpus[:5]]
    assert loaded.search(queries, 5) == searcher.search(queries, 5)
    # Search-time settings may differ from the build's.
    DenseSearcher.load(tmp_path / "index", settings=replace(settings, nprobe=2, ef_search=10, batch_size=3))

    with pytest.raises(StaleIndexError, match="another corpus"):
        DenseSearcher.load(tmp_path / "index", expected_corpus_hash="0" * 64)
    with pytest.raises(StaleIndexError, match="index_type differ"):
        DenseSearcher.load(tmp_path / "index", settings=replace(settings, index_type="hnsw"))
    with pytest.raises(StaleIndexError, match="query_prompt differ"):
        DenseSearcher.load(tmp_path / "index", settings=replace(settings, query_prompt="search: "))
    BM25Searcher.build(corpus, BM25Settings()).save(tmp_path / "bm25")
    with pytest.raises(StaleIndexError, match="not a dense index"):
        DenseSearcher.load(tmp_path / "bm25")


def test_an_index_built_by_other_weights_is_refused(tmp_path, corpus):
    model = tiny_model(tmp_path / "model", [d.contents for d in corpus], seed=1)
    settings = DenseSettings(model=str(model))
    DenseSearcher.build(corpus, settings).save(tmp_path / "index")
    collection = Collection("c", corpus, [], {})
    before = get_task("retrieval").backend(collection, {"kind": "dense", "model": str(model)})
    tiny_model(model, [d.contents for d in corpus], seed=2)  # same name, other weights
    with pytest.raises(StaleIndexError, match="other model weights"):
        DenseSearcher.load(tmp_path / "index", settings=settings)
    with pytest.raises(StaleIndexError, match="other model weights"):  # the user's folder: never rebuilt
        get_task("retrieval").backend(collection, {"kind": "dense", "model": str(model)}, index=tmp_path / "index")
    # The cache is keyed by corpus and settings, not weights: its stale index is rebuilt.
    after = get_task("retrieval").backend(collection, {"kind": "dense", "model": str(model)})
    assert after.identity["fingerprint"] != before.identity["fingerprint"]


def test_a_damaged_index_is_reported(tmp_path, searcher, settings):
    searcher.save(tmp_path / "index")
    (tmp_path / "index" / "index.faiss").unlink()
    with pytest.raises(CorruptIndexError, match=r"index\.faiss is missing"):
        DenseSearcher.load(tmp_path / "index", settings=settings)


def test_an_interrupted_build_resumes_from_the_last_complete_shard(tmp_path, corpus, settings, searcher):
    from dataclasses import replace

    settings = replace(settings, shard_size=25)  # 120 documents: 5 shards, the last of 20
    shards = tmp_path / "shards"
    first = CountingEncoder(Encoder.load(settings), fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        DenseSearcher.build(corpus, settings, encoder=first, shards=shards)
    assert first.document_calls == [25, 25]
    assert sorted(p.name for p in shards.glob("shard-*.npy")) == ["shard-00000.npy", "shard-00001.npy"]
    (shards / ".shard-00002.npy.partial").write_bytes(b"cut short")  # a shard that never completed

    second = CountingEncoder(Encoder.load(settings))
    resumed = DenseSearcher.build(corpus, settings, encoder=second, shards=shards)
    assert second.document_calls == [25, 25, 20]
    queries = [near_duplicate(d.text) for d in corpus[::7]]
    assert resumed.search(queries, 5) == searcher.search(queries, 5)


def test_shards_of_another_corpus_are_not_reused(tmp_path, corpus, settings):
    encoder = CountingEncoder(Encoder.load(settings))
    texts = [d.contents for d in corpus[:10]]
    encode_corpus(encoder, texts, shard_size=4, shards=tmp_path / "s", identity={"corpus": "a"})
    encode_corpus(encoder, texts, shard_size=4, shards=tmp_path / "s", identity={"corpus": "a"})
    assert encoder.document_calls == [4, 4, 2]
    encode_corpus(encoder, texts, shard_size=4, shards=tmp_path / "s", identity={"corpus": "b"})
    assert encoder.document_calls == [4, 4, 2, 4, 4, 2]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(DeepRetrievalError, match="no encoding shards of ours"):
        encode_corpus(encoder, texts, shard_size=4, shards=tmp_path / "mine")


# -- the retrieval task's backend seam ----------------------------------------------------------------


def test_the_task_builds_caches_and_checks_a_dense_index(tmp_path, small_collection, model_dir):
    task = get_task("retrieval")
    spec = {"kind": "dense", "model": str(model_dir), "index_type": "hnsw"}
    built = task.backend(small_collection, spec, index=tmp_path / "index")
    assert (tmp_path / "index" / "manifest.json").exists()
    assert not (tmp_path / ".index.shards").exists()  # encoding progress is removed once the index is saved
    assert built.search(["kidney stones"], 1)[0].ids == ["d4"]
    reopened = task.backend(small_collection, {**spec, "ef_search": 8}, index=tmp_path / "index")
    assert reopened.settings.ef_search == 8
    assert task.backend(small_collection, {"kind": "dense"}, index=tmp_path / "index").settings.index_type == "hnsw"
    with pytest.raises(StaleIndexError, match="index_type differ"):
        task.backend(small_collection, {**spec, "index_type": "flat"}, index=tmp_path / "index")
    # Without --index: cached, keyed by corpus and build settings.
    from deepretrieval.search import folders as index_folders

    cached = task.backend(small_collection, spec)
    folders = [p for p in index_folders.index_cache_dir().iterdir() if p.name.startswith("dense-")]
    assert len(folders) == 1 and (folders[0] / "manifest.json").exists()
    assert task.backend(small_collection, {**spec, "ef_search": 9}).corpus_sha == cached.corpus_sha
    assert len([p for p in index_folders.index_cache_dir().iterdir() if p.name.startswith("dense-")]) == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "splade"}, r"backend\.kind.*known: bm25, dense, hybrid"),
        ({"kind": "dense", "nprobes": 3}, r"backend\.nprobes: unknown"),
        ({"kind": "dense", "index_type": "pq"}, r"backend\.index_type: input should be 'flat', 'ivf' or 'hnsw', got"),
        ({"kind": "dense", "nprobe": 0}, r"backend\.nprobe: input should be greater than or equal to 1, got 0"),
        ({"kind": "dense", "hnsw_m": "many"}, r"recipe field backend\.hnsw_m: input should be a valid integer"),
        (
            {"kind": "dense", "model": "no-such/model-here"},
            r"model 'no-such/model-here'.*nothing is downloaded",
        ),
        ({"kind": "hybrid", "k2": 1}, r"backend\.k2: unknown"),
        ({"kind": "hybrid", "rrf_k": 0}, r"backend\.rrf_k: input should be greater than or equal to 1, got 0"),
        ({"kind": "hybrid", "b": 3}, r"backend\.b: input should be less than or equal to 1, got 3"),
    ],
)
def test_bad_backend_specs_are_one_line_naming_the_field(small_collection, spec, message):
    with pytest.raises(DeepRetrievalError, match=message) as info:
        get_task("retrieval").backend(small_collection, spec)
    assert "\n" not in str(info.value)


def test_feedback_modes_fail_clearly_on_a_dense_backend(small_collection, model_dir):
    from deepretrieval.prompts import PromptSettings
    from deepretrieval.tasks.retrieval import PRFPolicy

    task = get_task("retrieval")
    dense = task.backend(small_collection, {"kind": "dense", "model": str(model_dir)})
    with pytest.raises(DeepRetrievalError, match="no term statistics.*bm25 or hybrid"):
        task.execute([RM3Query("heart attack")], dense, 10)
    context = task.context(dense, small_collection, PromptSettings(mode="feedback", context_docs=0))
    with pytest.raises(DeepRetrievalError, match="no term statistics"):
        context(small_collection.examples)
    with pytest.raises(DeepRetrievalError, match="no term statistics"):
        PRFPolicy(dense).generate(small_collection.examples)
    # Retrieved titles in prompts need only search: they work.
    shown = task.context(dense, small_collection, PromptSettings(mode="rewrite", context_docs=2))
    assert all(len(e.meta["titles"]) == 2 for e in shown(small_collection.examples))


# -- hybrid -------------------------------------------------------------------------------------------


class FixedSearcher:
    def __init__(self, rankings: dict[str, list[str]]) -> None:
        self.rankings, self.calls = rankings, []

    def search(self, queries, k):
        self.calls.append(list(queries))
        return [Ranking(self.rankings.get(q, [])[:k], [1.0] * len(self.rankings.get(q, [])[:k])) for q in queries]


@pytest.mark.slow  # ranx's numba code: compiled on first use in a fresh venv (~40 s here), then cached
def test_hybrid_rrf_is_ranx_and_the_hand_computed_fusion():
    from ranx import Run, fuse

    lexical = FixedSearcher({"q": ["a", "b", "c"], "only dense": []})
    dense = FixedSearcher({"q": ["c", "d", "a"], "only dense": ["x", "y"]})
    hybrid = HybridSearcher(lexical, dense, HybridSettings(rrf_k=60))
    fused, again, alone = hybrid.search(["q", "q", "only dense"], 10)
    # By hand: a = 1/61 + 1/63, c = 1/63 + 1/61 (a tie: by id), b = 1/62, d = 1/62 (a tie: by id).
    assert fused.ids == ["a", "c", "b", "d"]
    assert fused.scores == pytest.approx([1 / 61 + 1 / 63, 1 / 61 + 1 / 63, 1 / 62, 1 / 62])
    ranx_scores = fuse(
        [Run.from_dict({"q": {"a": 3.0, "b": 2.0, "c": 1.0}}), Run.from_dict({"q": {"c": 3.0, "d": 2.0, "a": 1.0}})],
        method="rrf",
        params={"k": 60},
    ).to_dict()["q"]
    assert dict(zip(fused.ids, fused.scores, strict=True)) == pytest.approx(ranx_scores)
    assert again == fused and lexical.calls == [["q", "only dense"]] == dense.calls  # de-duplicated
    assert alone.ids == ["x", "y"] and alone.scores == pytest.approx([1 / 61, 1 / 62])
    assert hybrid.search(["q"], 2)[0].ids == ["a", "c"]


@pytest.mark.slow  # ranx's numba code: compiled on first use in a fresh venv (~40 s here), then cached
def test_hybrid_fuses_each_parts_top_depth_whatever_k():
    lexical = FixedSearcher({"q": ["a", "b", "c", "d"]})
    dense = FixedSearcher({"q": ["c", "e", "f", "a"]})
    hybrid = HybridSearcher(lexical, dense, HybridSettings(rrf_k=60, depth=2))
    # By hand, ranks 1-2 of each part fused: a = 1/61 (lexical 1; its dense rank 4 is below depth), c = 1/61
    # (dense 1), b = e = 1/62; ties by id here (these parts have no corpus rows). Then the documents both
    # parts rank below 2, by their better rank: f = 1/63 (dense 3), d = 1/64 (lexical 4). Fusing all four
    # ranks when k = 10 would put c (1/61 + 1/63) before a (1/61 + 1/64): the top 2 would depend on k.
    deep = hybrid.search(["q"], 10)[0]
    assert deep.ids == ["a", "c", "b", "e", "f", "d"]
    assert deep.scores == pytest.approx([1 / 61, 1 / 61, 1 / 62, 1 / 62, 1 / 63, 1 / 64])
    assert [hybrid.search(["q"], k)[0].ids for k in (2, 4)] == [deep.ids[:2], deep.ids[:4]]


@pytest.mark.slow  # ranx's numba code: compiled on first use in a fresh venv (~40 s here), then cached
def test_hybrid_through_the_task_keeps_rm3_modes_working(tmp_path, small_collection, model_dir):
    task = get_task("retrieval")
    spec = {"kind": "hybrid", "model": str(model_dir), "k1": 1.2, "rrf_k": 10}
    hybrid = task.backend(small_collection, spec, index=tmp_path / "hybrid")
    assert {p.name for p in (tmp_path / "hybrid").iterdir()} >= {"bm25", "dense"}
    assert hybrid.describe()["bm25"]["k1"] == 1.2 and hybrid.describe()["rrf_k"] == 10
    assert hybrid.search(["kidney stones"], 3)[0].ids[0] == "d4"
    outcome = task.execute([RM3Query("heart attack"), "kidney stones"], hybrid, 5)
    assert outcome[0].ids and outcome[1].ids[0] == "d4"
    assert hybrid.analyze("the of and") == []  # BM25's analysis: stopwords only is an empty query
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("keep")
    with pytest.raises(DeepRetrievalError, match="not a hybrid index"):
        task.backend(small_collection, spec, index=tmp_path / "theirs")
    lexical, dense, fusion = task.backend_spec({"kind": "hybrid", "bm25_method": "bm25+", "nprobe": 4}).parts()
    assert (lexical.given(), dense.given(), fusion) == ({"method": "bm25+"}, {"nprobe": 4}, {"rrf_k": 60, "depth": 100})


# -- recipes and a short GRPO run ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dense-cranfield", "dense-med", "hybrid-cranfield"])
def test_the_dense_recipes_load(name):
    from deepretrieval.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / f"{name}.yaml", {})
    spec = recipe.backend_spec()
    assert spec.kind == name.split("-")[0]
    assert spec.model == "all-minilm-l6-v2"
    if spec.kind == "hybrid":
        written = {"k1": 0.9, "b": 0.4, "method": "lucene", "stemmer": "english", "stopwords": "en"}
        assert spec.parts()[0].given() == written
    assert recipe.data.endswith(name.split("-")[1])


def test_grpo_trains_on_a_dense_backend(tmp_path, small_collection):
    """A short GRPO run through the task seam, as any recipe would run it: train.py knows no backend."""
    from deepretrieval.runs import read_log
    from deepretrieval.train import train

    from .conftest import tiny_recipe, write_beir

    data = write_beir(tmp_path / "data", small_collection)
    texts = [d.contents for d in small_collection.documents] + [e.question for e in small_collection.examples]
    model = tiny_model(tmp_path / "encoder", texts)
    recipe = tiny_recipe(
        tmp_path / "run",
        data=str(data),
        task="retrieval",
        split="test",
        backend={"kind": "dense", "model": str(model)},
        mode="expand",
        context_docs=1,
        reward="recall-lenient",
        max_steps=1,
        save_steps=1,
        prompts_per_step=1,
        num_generations=2,
        max_completion_length=6,
        eval_steps=0,  # the folder has a test split only: no held-out split to select on
    )
    result = train(recipe)
    assert result.steps == 1
    log = [r for r in read_log(result.log_path) if "reward" in r]
    assert [r["step"] for r in log] == [1]
    assert log[0]["retrieval/failures"] == 0
