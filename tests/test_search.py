"""BM25 search (bm25s), and the tie rule every backend shares: score descending, then corpus row ascending,
exact at every k, so that the top 10 is the same whether k is 10 (rewards) or 1,000 (evaluation)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

import bm25s
import numpy as np
import pytest
import Stemmer

from deepretrieval.data.retrievaldemo import build_demo_collection
from deepretrieval.errors import SearchFailure, StaleIndexError
from deepretrieval.search.bm25 import BM25Searcher, BM25Settings
from deepretrieval.search.folders import corpus_hash
from deepretrieval.types import Collection, Document, Hit, Ranking

DEPTHS = (10, 100, 1000)


@pytest.fixture
def searcher(small_collection):
    return BM25Searcher.build(small_collection.documents)


@pytest.fixture(scope="module")
def demo() -> Collection:
    """The generated demo collection: repeated template sentences give many exactly equal BM25 scores."""
    return build_demo_collection()


@pytest.fixture(scope="module")
def demo_searcher(demo) -> BM25Searcher:
    return BM25Searcher.build(demo.documents)


def ids(hits):
    return [[h.doc_id for h in hs] for hs in hits]


def assert_same_top_10_at_every_k(
    search: Callable[[int], Sequence[Ranking]], rows: Mapping[str, int], *, min_ties: int = 1
) -> list[Ranking]:
    """The top 10 at k = 10, 100 and 1,000 agree (each ranking is the start of the deeper one) and follow the
    tie rule; at least ``min_ties`` rankings have a run of equal scores across the cut at 10, where an order
    that depends on k would show. Returns the rankings at k = 1,000."""
    found = {k: search(k) for k in DEPTHS}
    deepest = found[DEPTHS[-1]]
    for k in DEPTHS[:-1]:
        assert [r.ids[:10] for r in found[k]] == [r.ids[:10] for r in deepest], f"top 10 at k={k} and k=1000"
        assert [r.ids for r in found[k]] == [r.ids[:k] for r in deepest], f"k={k}: not a prefix of k=1000"
    for ranking in deepest:
        keys = [(-score, rows[d]) for d, score in zip(ranking.ids, ranking.scores, strict=True)]
        assert keys == sorted(keys), "not by score descending, then corpus row"
    straddling = sum(len(r) > 10 and r.scores[9] == r.scores[10] for r in deepest)
    assert straddling >= min_ties, "no tie across the cut at 10: this comparison could not fail"
    return deepest


def test_ranks_by_bm25_and_ties_by_corpus_row_on_a_hand_checked_corpus():
    documents = [
        Document("a", "", "kidney stones kidney"),  # 3 terms after analysis: kidney x2, stone
        Document("b", "", "kidney"),
        Document("c", "", "stones"),
        Document("d", "", "heart"),
    ]
    searcher = BM25Searcher.build(documents)
    # Lucene's BM25 (bm25s's default), k1 0.9, b 0.4: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), term score =
    # idf x tf / (tf + k1 (1 - b + b len / avglen)). N = 4, avglen = 6 / 4; kidney and stone: df 2, idf ln 2.
    #   a: ln 2 x (2 / (2 + 0.9 x 1.4) + 1 / (1 + 0.9 x 1.4)) = ln 2 x (2 / 3.26 + 1 / 2.26) = 0.7319
    #   b, c: ln 2 x 1 / (1 + 0.9 x (0.6 + 0.4 / 1.5)) = ln 2 / 1.78 = 0.3894 each: a tie, b's row first
    #   d: no query term, no hit
    ranking = searcher.search(["kidney stones"], 10)[0]
    assert ranking.ids == ["a", "b", "c"]
    assert ranking.scores == pytest.approx([0.7319, 0.3894, 0.3894], abs=1e-4)
    assert ranking.scores[1] == ranking.scores[2]  # exactly equal, not merely close
    # heart: df 1, idf ln(1 + 3.5 / 1.5) = 1.2040, d scores 1.2040 / 1.78 = 0.6764 > a's kidney alone
    # (ln 2 x 2 / 3.26 = 0.4252) > b's 0.3894.
    heart = searcher.search(["heart kidney"], 3)[0]
    assert heart.ids == ["d", "a", "b"]
    assert heart.scores == pytest.approx([0.6764, 0.4252, 0.3894], abs=1e-4)


def test_batched_equals_one_by_one_at_every_k(demo, demo_searcher):
    queries = [e.question for e in demo.split("test")] + ["zzz", "the of and"]
    rows = {d.id: i for i, d in enumerate(demo.documents)}

    def batched(k: int) -> list[Ranking]:
        together = demo_searcher.search(queries, k)
        alone = [demo_searcher.search([q], k)[0] for q in queries]
        assert [(r.ids, r.scores) for r in together] == [(r.ids, r.scores) for r in alone], f"k={k}"
        return together

    assert_same_top_10_at_every_k(batched, rows)


def test_top_10_is_the_same_at_every_k_and_is_bm25s_full_ranking(demo, demo_searcher):
    """The 60 test questions of the demo: bm25s's own top-k selection ordered ties differently at k = 10
    and k = 1,000 for 6 of them."""
    questions = [e.question for e in demo.split("test")]
    rows = {d.id: i for i, d in enumerate(demo.documents)}
    deepest = assert_same_top_10_at_every_k(lambda k: demo_searcher.search(questions, k), rows, min_ties=5)
    # Independently: bm25s's scores for every document (its own tokenizer, same settings), sorted in Python.
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    corpus = bm25s.tokenize([d.contents for d in demo.documents], stopwords="en", stemmer=stemmer, show_progress=False)
    retriever.index(corpus, show_progress=False)
    tokens = bm25s.tokenize(questions, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    for question, ranking in zip(tokens, deepest, strict=True):
        scores = retriever.get_scores(question)
        expected = sorted((i for i in range(len(scores)) if scores[i] > 0), key=lambda i: (-scores[i], i))[:1000]
        assert ranking.ids == [demo.documents[i].id for i in expected]


def test_weighted_search_follows_the_same_rule(demo, demo_searcher):
    rows = {d.id: i for i, d in enumerate(demo.documents)}
    weights = [{t: 1.0 for t in demo_searcher.analyze(e.question)} for e in demo.split("test")]
    assert_same_top_10_at_every_k(lambda k: demo_searcher.search_weighted(weights, k), rows)


def test_the_boolean_engine_follows_the_same_rule(demo):
    from deepretrieval.search.boolean import BooleanIndex, BooleanRequest

    engine = BooleanIndex.build(demo.documents)
    rows = {d.id: i for i, d in enumerate(demo.documents)}
    # A truncated word scores 1 per field it matches in: whole runs of equal scores.
    requests = [BooleanRequest(q) for q in ("pain*", "therap*", "child* AND surg*", "heart", "blood pressure")]
    assert_same_top_10_at_every_k(lambda k: engine.search(requests, k), rows, min_ties=2)


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
