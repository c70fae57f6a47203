"""The synthetic demo collection: deterministic, well-formed, hard for lay queries, easy for rewrites."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import bm25s
import pytest
import Stemmer

from deepretrieval.data.retrievaldemo import (
    _CONDITIONS,
    _INTERVENTIONS,
    _topic_pool,
    build_demo_collection,
    oracle_query,
)
from deepretrieval.errors import DeepRetrievalError
from deepretrieval.types import Collection, Example

_STEMMER = Stemmer.Stemmer("english")
_STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN)


@pytest.fixture(scope="module")
def demo() -> Collection:
    return build_demo_collection()


def _stems(text: str) -> set[str]:
    """The stemmed index terms of a text, as bm25s sees them (its default token pattern)."""
    words = [w for w in re.findall(r"(?u)\b\w\w+\b", text.lower()) if w not in _STOPWORDS]
    return set(_STEMMER.stemWords(words))


def _bm25(collection: Collection) -> tuple[bm25s.BM25, list[str]]:
    corpus = [d.title + "\n" + d.text for d in collection.documents]
    tokens = bm25s.tokenize(corpus, stopwords="en", stemmer=_STEMMER, show_progress=False)
    retriever = bm25s.BM25(k1=0.9, b=0.4)
    retriever.index(tokens, show_progress=False)
    return retriever, [d.id for d in collection.documents]


def _scores(
    retriever: bm25s.BM25, ids: list[str], queries: Sequence[str], examples: Sequence[Example], k: int = 100
) -> tuple[float, float]:
    """Mean recall@k (relevant = grade > 0) and mean nDCG@10 (exponential gain)."""
    tokens = bm25s.tokenize(list(queries), stopwords="en", stemmer=_STEMMER, show_progress=False)
    results, _ = retriever.retrieve(tokens, k=k, show_progress=False)
    recalls, ndcgs = [], []
    for example, row in zip(examples, results, strict=True):
        ranked = [ids[i] for i in row]
        recalls.append(len(example.relevant & set(ranked)) / len(example.relevant))
        dcg = sum((2 ** example.targets.get(d, 0) - 1) / math.log2(r + 2) for r, d in enumerate(ranked[:10]))
        ideal = sorted(example.targets.values(), reverse=True)[:10]
        ndcgs.append(dcg / sum((2**g - 1) / math.log2(r + 2) for r, g in enumerate(ideal)))
    return sum(recalls) / len(recalls), sum(ndcgs) / len(ndcgs)


def _fingerprint(c: Collection) -> tuple[object, ...]:
    return (
        c.name,
        [(d.id, d.title, d.text) for d in c.documents],
        [(e.id, e.question, sorted(e.targets.items()), sorted(e.meta.items(), key=str)) for e in c.examples],
        c.splits,
    )


def test_same_seed_same_collection_and_other_seed_differs(demo: Collection) -> None:
    assert _fingerprint(build_demo_collection(seed=0)) == _fingerprint(demo)
    other = build_demo_collection(seed=1)
    assert [e.question for e in other.examples] != [e.question for e in demo.examples]
    assert [d.text for d in other.documents] != [d.text for d in demo.documents]


def test_sizes_and_ids(demo: Collection) -> None:
    assert demo.name == "demo"
    assert len(demo.examples) == 300
    assert 3000 <= len(demo.documents) <= 6000
    assert len({d.id for d in demo.documents}) == len(demo.documents)
    assert len({e.id for e in demo.examples}) == len(demo.examples)
    assert all(d.title and d.text for d in demo.documents)
    assert {k: len(v) for k, v in demo.splits.items()} == {"train": 180, "dev": 60, "test": 60}
    assert all(e.meta["synthetic"] for e in demo.examples)


def test_parameters_scale_the_collection() -> None:
    small = build_demo_collection(n_topics=20, docs_per_topic=3, distractors=1, partial_per_topic=0, filler_docs=5)
    assert len(small.examples) == 20
    assert len(small.documents) == 20 * (3 + 1) + 5
    assert {k: len(v) for k, v in small.splits.items()} == {"train": 12, "dev": 4, "test": 4}
    with pytest.raises(DeepRetrievalError):
        build_demo_collection(n_topics=len(_topic_pool()) + 1)
    with pytest.raises(DeepRetrievalError):
        build_demo_collection(docs_per_topic=0)


def test_splits_partition_examples_by_topic_and_share_concepts(demo: Collection) -> None:
    ids = [q for split in demo.splits.values() for q in split]
    assert sorted(ids) == sorted(e.id for e in demo.examples)
    topics = {name: {e.meta["topic"] for e in demo.split(name)} for name in demo.splits}
    assert len({t for ts in topics.values() for t in ts}) == len(demo.examples)  # one example per topic
    assert not topics["train"] & topics["test"]
    assert not topics["train"] & topics["dev"]
    assert not topics["dev"] & topics["test"]
    train = demo.split("train")
    for facet in ("condition", "intervention", "population"):
        known = {e.meta[facet] for e in train}
        for e in demo.split("dev") + demo.split("test"):
            assert e.meta[facet] in known, (facet, e.meta[facet])


def test_every_example_has_graded_targets_that_exist(demo: Collection) -> None:
    doc_ids = {d.id for d in demo.documents}
    for e in demo.examples:
        assert set(e.targets) <= doc_ids
        assert set(e.targets.values()) <= {0, 1, 2}
        assert sum(g == 2 for g in e.targets.values()) >= 8
        assert e.relevant
    assert any(1 in e.targets.values() for e in demo.examples)
    assert any(0 in e.targets.values() for e in demo.examples)


def test_relevant_documents_use_the_topic_technical_terms(demo: Collection) -> None:
    docs = {d.id: d.contents.lower() for d in demo.documents}
    conditions = {c.key: c for c in _CONDITIONS}
    interventions = {c.key: c for c in _INTERVENTIONS}
    for e in demo.examples:
        cond, interv = conditions[e.meta["condition"]], interventions[e.meta["intervention"]]
        for doc in e.relevant:
            assert any(t.lower() in docs[doc] for t in cond.technical)
            assert any(t.lower() in docs[doc] for t in interv.technical)


def test_questions_share_no_word_with_their_technical_terms(demo: Collection) -> None:
    for e in demo.examples:
        assert not any(t.lower() in e.question.lower() for t in e.meta["technical_terms"]), e.question
        assert not _stems(e.question) & _stems(oracle_query(e)), e.question


def test_no_lay_phrase_shares_a_stem_with_its_topic_technical_terms() -> None:
    for topic in _topic_pool():
        technical = set().union(*(_stems(t) for t in topic.technical_terms))
        concepts = [topic.condition, topic.intervention] + ([topic.population] if topic.population else [])
        for concept in concepts:
            for lay in concept.lay:
                assert not _stems(lay) & technical, (topic.key, lay)


def test_oracle_query_is_the_technical_terms(demo: Collection) -> None:
    e = demo.examples[0]
    assert oracle_query(e) == " ".join(e.meta["technical_terms"])
    with pytest.raises(DeepRetrievalError):
        oracle_query(Example("x", "q", {"d": 1}))


def test_lay_questions_fail_and_technical_rewrites_succeed(demo: Collection) -> None:
    retriever, ids = _bm25(demo)
    test = demo.split("test")
    original_recall, original_ndcg = _scores(retriever, ids, [e.question for e in test], test)
    oracle_recall, oracle_ndcg = _scores(retriever, ids, [oracle_query(e) for e in test], test)
    expanded_recall, _ = _scores(retriever, ids, [e.question + " " + oracle_query(e) for e in test], test)
    assert 0.05 < original_recall < 0.4
    assert oracle_recall > 0.8
    assert expanded_recall > 0.8
    assert oracle_ndcg > original_ndcg + 0.3
