"""Completions as an adversary writes them: no exception, no positive reward for an answer with nothing to
search (in any mode), bounded parse time."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepretrieval.rewards import PRESETS
from deepretrieval.search.bm25 import BM25Searcher

from .conftest import retrieval_reward

NOTHING_TO_SEARCH = ["!!!", "the of and", "\u200b", "<|im_end|>", "  ", "??? ... ---", "a an the"]


@pytest.fixture(scope="module")
def searcher():
    from deepretrieval.data import load_collection

    return BM25Searcher.build(load_collection("demo").documents)


@pytest.fixture(scope="module")
def demo_examples():
    from deepretrieval.data import load_collection

    return load_collection("demo").split("train")[:4]


@pytest.mark.parametrize("preset", ["deepretrieval-recall", "recall", "recall-lenient", "ndcg"])
@pytest.mark.parametrize("mode", ["rewrite", "expand"])
def test_an_answer_with_nothing_to_search_is_scored_as_empty(searcher, demo_examples, preset, mode):
    """In expand mode such an answer used to run the user's own query and earn its full reward (+6 under
    the DeepRetrieval preset) while an empty answer got -1."""
    reward = retrieval_reward(searcher, demo_examples, PRESETS[preset], mode=mode)
    example = demo_examples[0].id
    empty = reward.score_batch(['"}</answer>'], [example])[0]
    for text in NOTHING_TO_SEARCH:
        result = reward.score_batch([f'{text}"}}</answer>'], [example])[0]
        assert result.total is not None and result.total <= 0, (text, result)
        assert result.total == empty.total or not result.format_ok, (text, result)
    real = reward.score_batch([f'{demo_examples[0].meta["oracle_query"]}"}}</answer>'], [example])[0]
    assert real.total > 0


pieces = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
        '{"query": "',
        '"}',
        "{",
        "}",
        '"',
        "\\",
        "\\u",
        "\u200b",
        "myocardial infarction",
        "the",
        "!!!",
        "<|im_end|>",
        "\n",
        " ",
    ]
)
completions = st.one_of(st.text(max_size=300), st.lists(pieces, max_size=80).map("".join))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(completions, min_size=1, max_size=8),
    mode=st.sampled_from(["rewrite", "expand"]),
    variant=st.sampled_from(["direct", "reasoning"]),
)
def test_fuzzed_completions_never_raise_and_nothing_to_search_never_pays(searcher, demo_examples, texts, mode, variant):
    reward = retrieval_reward(searcher, demo_examples, PRESETS["deepretrieval-recall"], mode=mode, variant=variant)
    started = time.perf_counter()
    results = reward.score_batch(texts, [demo_examples[0].id] * len(texts))
    assert time.perf_counter() - started < 2.0  # a linear parse of ≤ 24 kB; quadratic parsing took seconds
    for text, result in zip(texts, results, strict=True):
        assert result.failure is None and result.total is not None
        if not result.query or not searcher.analyze(result.query):
            assert result.total <= 0, (text, result)
