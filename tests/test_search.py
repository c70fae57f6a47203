from __future__ import annotations

import json

import numpy as np
import pytest

from deepretrieval.errors import SearchFailure, StaleIndexError
from deepretrieval.search.base import Searcher
from deepretrieval.search.bm25 import BM25Searcher, BM25Settings, corpus_hash
from deepretrieval.types import Document, Hit, Ranking


@pytest.fixture
def searcher(small_collection):
    return BM25Searcher.build(small_collection.documents)


def ids(hits):
    return [[h.doc_id for h in hs] for hs in hits]


def test_is_a_searcher_and_ranks_by_term_match(searcher):
    assert isinstance(searcher, Searcher)
    hits = searcher.search(["nephrolithiasis lithotripsy", "myocardial infarction"], 10)
    assert hits[0][0].doc_id == "d4"
    assert {h.doc_id for h in hits[1][:2]} == {"d1", "d2"}
    assert all(a.score >= b.score for a, b in zip(hits[1], hits[1][1:], strict=False))


def test_no_match_empty_and_out_of_vocabulary_give_no_hits(searcher):
    assert searcher.search([], 5) == []
    assert ids(searcher.search(["", "the of and", "zzzqqq", "kidney"], 5)) == [[], [], [], ["d4"]]


def test_k_is_clamped_and_zero_score_documents_are_not_hits(searcher, small_collection):
    hits = searcher.search(["heart"], 1000)[0]
    assert 0 < len(hits) < len(small_collection.documents)
    assert all(h.score > 0 for h in hits)


def test_batched_equals_one_by_one(searcher):
    queries = ["heart attack", "kidney stones lithotripsy", "blood pressure", "zzz"]
    assert ids(searcher.search(queries, 3)) == [ids(searcher.search([q], 3))[0] for q in queries]


def test_save_load_round_trip_with_mmap(searcher, small_collection, tmp_path):
    searcher.save(tmp_path / "idx")
    loaded = BM25Searcher.load(
        tmp_path / "idx", mmap=True, expected_corpus_hash=corpus_hash(small_collection.documents)
    )
    assert isinstance(loaded.doc_tokens, np.memmap)
    queries = ["heart attack", "kidney stones", "blood pressure hypertension"]
    assert ids(loaded.search(queries, 5)) == ids(searcher.search(queries, 5))
    assert loaded.doc_term_counts("d4") == searcher.doc_term_counts("d4")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["documents"] == 6 and manifest["settings"]["k1"] == 0.9


def test_stale_and_missing_indexes_are_refused(searcher, small_collection, tmp_path):
    searcher.save(tmp_path / "idx")
    changed = [*small_collection.documents[:-1], Document("d6", "diet", "vegetables only")]
    with pytest.raises(StaleIndexError, match="another corpus"):
        BM25Searcher.load(tmp_path / "idx", expected_corpus_hash=corpus_hash(changed))
    with pytest.raises(StaleIndexError, match="k1"):
        BM25Searcher.load(tmp_path / "idx", settings=BM25Settings(k1=1.2))
    with pytest.raises(SearchFailure, match="no index"):
        BM25Searcher.load(tmp_path / "nothing")


def test_weighted_search_matches_plain_search_for_unit_weights(searcher):
    for query in ["heart attack treatment", "kidney stones", "blood pressure medicine"]:
        weights = {t: 1.0 for t in searcher.analyze(query)}
        weighted = searcher.search_weighted([weights], 6)[0]
        plain = searcher.search([query], 6)[0]
        assert [h.doc_id for h in weighted] == [h.doc_id for h in plain]
        assert [h.score for h in weighted] == pytest.approx([h.score for h in plain], rel=1e-5)


def test_settings_change_the_analysis(small_collection):
    stemmed = BM25Searcher.build(small_collection.documents)
    raw = BM25Searcher.build(small_collection.documents, BM25Settings(stemmer=None, stopwords=None))
    assert stemmed.analyze("the stones") == ["stone"]
    assert raw.analyze("the stones") == ["the", "stones"]


def test_ranking_is_a_lazy_sequence_of_hits(searcher):
    ranking = searcher.search(["myocardial infarction heart"], 10)[0]
    hits = list(ranking)
    assert all(isinstance(h, Hit) for h in hits) and [h.doc_id for h in hits] == ranking.ids
    assert ranking[0] == hits[0] and ranking[-1] == hits[-1]
    assert ranking[1:3] == hits[1:3] and isinstance(ranking[1:3], Ranking)
    assert ranking == hits and ranking != hits[:-1]
    with pytest.raises(ValueError):
        Ranking(["a", "b"], [1.0])
