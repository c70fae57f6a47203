"""Typed backend specs (search/specs.py): one spec class per kind, defaults written once, a registry where a
new backend is one spec class, one factory and one registration line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Literal

import pytest

from deepretrieval.errors import DeepRetrievalError
from deepretrieval.recipe import load_recipe
from deepretrieval.search import specs
from deepretrieval.search.specs import (
    BackendSpec,
    BM25Spec,
    CTGovSpec,
    DenseSpec,
    FusionSpec,
    HttpSpec,
    LuceneSpec,
    Number,
    PubMedSpec,
    register,
)
from deepretrieval.tasks import get_task
from deepretrieval.types import Ranking

# -- a new backend: one spec class, one factory, one registration line ------------------------------------


class WordsSpec(BackendSpec):
    kind: Literal["words-test"] = "words-test"
    boost: Number = 1.0


class WordsSearcher:
    """Ranks documents by how many of the query's words their title and text hold (ties: corpus order)."""

    def __init__(self, documents, boost: float) -> None:
        self.documents, self.boost = documents, boost

    def search(self, queries, k):
        rankings = []
        for query in queries:
            words = set(query.lower().split())
            scored = [
                (sum(w in words for w in f"{d.title} {d.text}".lower().split()), i)
                for i, d in enumerate(self.documents)
            ]
            top = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))[:k]
            rankings.append(Ranking([self.documents[i].id for _, i in top], [s * self.boost for s, _ in top]))
        return rankings

    def describe(self):
        return {"kind": "words-test", "boost": self.boost}


def words_backend(collection, spec: WordsSpec, index):
    return WordsSearcher(collection.documents, spec.boost)


@pytest.fixture
def words_backend_registered():
    register(WordsSpec, words_backend, family="retrieval")
    yield
    specs.REGISTRY.pop("words-test")
    specs._union.cache_clear()


def test_a_backend_registered_in_a_test_runs_a_recipe_through_the_task(
    words_backend_registered, small_collection, tmp_path
):
    from deepretrieval.evaluate import evaluate
    from deepretrieval.policies import OriginalPolicy

    path = tmp_path / "r.yaml"
    path.write_text("backend:\n  kind: words-test\n  boost: 2\n")
    recipe = load_recipe(path, {})
    assert recipe.backend == {"kind": "words-test", "boost": 2}  # the spec's dump: what policy.json records
    task = recipe.task_family()
    backend = task.backend(small_collection, recipe.backend)
    assert isinstance(backend, WordsSearcher) and backend.boost == 2
    # q3 "kidney stones": d4 holds both words (title and text); q4 "heart attack death": only d5 holds one
    # ("heart"), and its judged document d2 is not found.
    (outcome,) = task.execute(["kidney stones"], backend, 3)
    assert outcome.ids == ["d4"]
    policy = OriginalPolicy(task)
    (result,) = evaluate(small_collection, "test", [policy], backend, tmp_path / "eval", task=task)
    assert result.metrics["recall@10"] == pytest.approx(0.5)
    path.write_text("backend:\n  kind: words-test\n  boots: 2\n")
    with pytest.raises(DeepRetrievalError, match=r"r.yaml:3: recipe field backend.boots: unknown for kind words-test"):
        load_recipe(path, {})
    with pytest.raises(DeepRetrievalError, match="the literature task has no backend 'words-test'"):
        load_recipe(None, {"task": "literature", "backend": {"kind": "words-test"}})


def test_a_kind_is_registered_once():
    class Other(BackendSpec):
        kind: Literal["bm25"] = "bm25"

    with pytest.raises(ValueError, match="registered already"):
        register(Other, words_backend, family="retrieval")


def test_each_family_has_its_kinds_and_its_default():
    assert specs.kinds(["retrieval"]) == ("bm25", "dense", "hybrid", "lucene", "remote")
    get_task("literature")  # its kinds are registered when its module is imported
    assert set(specs.kinds(["literature"])) == {"boolean", "pubmed", "ctgov", "remote"}  # remote: both families
    assert "remote" not in specs.kinds(["sql"])
    assert get_task("qa").backend_spec({}) == BM25Spec()  # qa uses retrieval's backends
    assert get_task("literature").backend_spec(None).kind == "boolean"
    with pytest.raises(DeepRetrievalError, match=r"^recipe field backend.kind: the qa task has no backend 'pubmed'"):
        get_task("qa").backend_spec({"kind": "pubmed"})


# -- defaults written once --------------------------------------------------------------------------------


def test_the_settings_dataclasses_take_their_defaults_from_the_specs():
    from deepretrieval.search.bm25 import BM25Settings
    from deepretrieval.search.dense import DenseSettings
    from deepretrieval.search.http import HttpSettings
    from deepretrieval.search.hybrid import HybridSettings
    from deepretrieval.search.lucene import LuceneSettings

    assert BM25Settings() == BM25Settings(**BM25Spec().fields()) == BM25Settings(0.9, 0.4, "lucene", "english", "en")
    assert DenseSettings() == DenseSettings(**DenseSpec().fields())
    assert dataclasses.asdict(LuceneSettings()) == LuceneSpec().fields() == {"k1": 0.9, "b": 0.4}
    assert dataclasses.asdict(HybridSettings()) == FusionSpec().model_dump() == {"rrf_k": 60, "depth": 100}
    http = HttpSettings(base_url="http://h", rate=1.0)
    for name in ("burst", "headroom", "timeout", "retries", "backoff", "max_backoff", "max_wait", "max_query_bytes"):
        assert getattr(http, name) == HttpSpec.default(name), name
    assert http.cache_max_bytes == 1 << 30 and http.concurrency == PubMedSpec.default("concurrency") == 4
    assert CTGovSpec.default("concurrency") == 2 and CTGovSpec.default("rate") == 0.8
    assert PubMedSpec.default("rate") is None  # NCBI's limit: 3/s, 10/s with a key (test_http_backends)


def test_the_cli_takes_its_bm25_and_prf_defaults_from_the_specs():
    import inspect

    from deepretrieval import cli
    from deepretrieval.feedback import FeedbackSettings

    index = inspect.signature(cli.index).parameters
    assert all(index[name].default is None for name in ("k1", "b", "method", "stemmer", "stopwords"))
    evaluate = inspect.signature(cli.eval_command).parameters
    assert (
        (evaluate["prf_docs"].default, evaluate["prf_terms"].default, evaluate["prf_weight"].default)
        == (
            FeedbackSettings.fb_docs,
            FeedbackSettings.fb_terms,
            FeedbackSettings.original_weight,
        )
        == (10, 10, 0.5)
    )


# -- identical behaviour ----------------------------------------------------------------------------------


def test_the_bm25_cache_key_is_unchanged(small_collection, tmp_path, monkeypatch):
    """The key hashes the corpus and the settings as before the specs: old caches are found, not rebuilt."""
    from deepretrieval.search import folders
    from deepretrieval.search.bm25 import corpus_hash

    monkeypatch.setattr(folders, "index_cache_dir", lambda: tmp_path)
    sha = corpus_hash(small_collection.documents)
    settings = {"k1": 0.9, "b": 0.4, "method": "lucene", "stemmer": "english", "stopwords": "en"}
    key = hashlib.sha256(json.dumps([sha, settings], sort_keys=True).encode()).hexdigest()[:24]
    assert key == "6f7ab1fcb2223fa9ea5d174d"  # what the code before the specs wrote (checked on it)
    task = get_task("retrieval")
    task.backend(small_collection, {})
    task.backend(small_collection, {"kind": "bm25", "bm25_method": "lucene", "k1": 0.9})
    assert [p.name for p in tmp_path.iterdir()] == [key]


@pytest.mark.parametrize(
    "section",
    [
        {},
        {"kind": "bm25", "k1": 1.2, "stemmer": None},
        {"kind": "hybrid", "k1": 1.2, "nprobe": 4, "rrf_k": 10},
        {"kind": "dense", "model": "all-minilm-l6-v2", "index_type": "flat", "batch_size": 16},
        {"kind": "lucene", "b": 0.75},
    ],
)
def test_a_spec_dump_is_the_section_as_written_and_reads_back_the_same(section):
    task = get_task("retrieval")
    spec = task.backend_spec(section)
    assert spec.dump() == section
    assert json.loads(json.dumps(spec.dump())) == section  # a plain JSON mapping (policy.json)
    assert task.backend_spec(spec.dump()) == spec


def test_flat_spellings_and_none_words_mean_what_they_meant():
    spec = get_task("retrieval").backend_spec({"bm25_method": "bm25+", "stemmer": "None", "stopwords": ""})
    assert (spec.method, spec.stemmer, spec.stopwords) == ("bm25+", None, None)
    dense = get_task("retrieval").backend_spec({"kind": "dense", "query_prompt": "none", "max_seq_length": "none"})
    assert (dense.query_prompt, dense.max_seq_length) == (None, None)
    assert get_task("retrieval").backend_spec({"kind": "dense", "nprobe": 4.0}).nprobe == 4  # a whole number


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"k1": True}, "backend.k1: must be a number, got True"),
        ({"method": "bm26"}, "backend.method: input should be"),
        ({"kind": "dense", "nprobe": 1.5}, "backend.nprobe: input should be a valid integer"),
        ({"kind": "lucene", "method": "lucene"}, r"backend.method: unknown for kind lucene \(known: kind, b, k1\)"),
        ({"kind": 3}, "backend.kind: the retrieval task has no backend 3"),
    ],
)
def test_bad_sections_are_one_line_naming_the_field(section, message):
    with pytest.raises(DeepRetrievalError, match=rf"^recipe field {message}") as info:
        get_task("retrieval").backend_spec(section)
    assert "\n" not in str(info.value)


def test_the_prf_baseline_and_the_feedback_modes_share_one_settings_class():
    from deepretrieval.feedback import FeedbackSettings
    from deepretrieval.policies import PRFPolicy

    assert PRFPolicy(None).describe() == {"policy": "prf", "fb_docs": 10, "fb_terms": 10, "original_weight": 0.5}
    with pytest.raises(DeepRetrievalError, match="at least 1 feedback document"):
        FeedbackSettings(fb_docs=0)
    with pytest.raises(DeepRetrievalError, match=r"weight must be in \[0, 1\]"):
        FeedbackSettings(original_weight=1.5)


def test_every_shipped_recipe_keeps_its_backend_section_as_written():
    """The recipes in recipes/ read as before: their backend: section is the spec's dump unchanged, so a run's
    policy.json records what it recorded before the specs."""
    from pathlib import Path

    import yaml

    folder = Path(__file__).resolve().parents[1] / "recipes"
    recipes = sorted(folder.glob("*.yaml"))
    assert len(recipes) >= 8
    for path in recipes:
        written = (yaml.safe_load(path.read_text()) or {}).get("backend", {})
        assert load_recipe(path, {}).backend == written, path.name
