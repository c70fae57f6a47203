from __future__ import annotations

from dataclasses import replace

import pytest

from deepretrieval.parsing import Parsed
from deepretrieval.rewards import PRESETS, RewardConfig, score
from deepretrieval.types import Example

EXAMPLE = Example("q", "question", {f"d{i}": 1 for i in range(20)} | {"n": 0})
OK = Parsed("some query", None, True, "ok")
TABLE = PRESETS["deepretrieval-recall"]


def ranked_with_recall(fraction: float) -> list[str]:
    hits = round(20 * fraction)
    return [f"d{i}" for i in range(hits)] + ["n", "x", "y"]


@pytest.mark.parametrize(
    ("recall", "expected"),
    [
        (1.0, 6.0),
        (0.7, 6.0),
        (0.65, 5.0),
        (0.5, 5.0),
        (0.45, 4.0),
        (0.4, 4.0),
        (0.35, 2.0),
        (0.3, 2.0),
        (0.25, 1.5),
        (0.1, 1.5),
        (0.05, 1.1),
        (0.0, -2.5),
    ],
)
def test_deepretrieval_step_table_with_format_bonus(recall, expected):
    assert score(OK, ranked_with_recall(recall), EXAMPLE, TABLE).total == pytest.approx(expected)


def test_bad_format_is_the_format_penalty_only():
    bad = Parsed("x", None, False, "text_after_answer")
    result = score(bad, ranked_with_recall(1.0), EXAMPLE, TABLE)
    assert (result.total, result.reason, result.metric) == (-4.0, "text_after_answer", None)


def test_failure_is_never_a_number():
    for ranked, failure in ((None, None), (["d1"], "backend down")):
        result = score(OK, ranked, EXAMPLE, TABLE, failure=failure)
        assert result.total is None and result.failure


def test_empty_query_earns_nothing_positive_even_when_format_is_not_required():
    lenient = PRESETS["recall-lenient"]
    for parsed in (Parsed(None, None, False, "missing_answer_tag"), Parsed("", None, True, "ok")):
        result = score(parsed, ranked_with_recall(1.0), EXAMPLE, lenient)
        assert result.total is not None and result.total <= 0


def test_length_cap_penalises():
    config = replace(PRESETS["recall"], max_query_words=3, length_penalty=-2.0)
    long = Parsed("a b c d e", None, True, "ok")
    result = score(long, ranked_with_recall(1.0), EXAMPLE, config)
    assert (result.total, result.reason) == (-2.0, "too_long")


def test_relative_to_original_and_raw_metrics():
    gain = PRESETS["recall-gain"]
    assert score(OK, ranked_with_recall(0.5), EXAMPLE, gain, original_metric=0.2).total == pytest.approx(0.3)
    with pytest.raises(ValueError):
        score(OK, ranked_with_recall(0.5), EXAMPLE, gain)
    ndcg = score(OK, ["d0", "n"], EXAMPLE, PRESETS["ndcg"])
    assert 0 < ndcg.total < 1 and ndcg.metric == ndcg.total
    assert score(OK, ranked_with_recall(0.5), EXAMPLE, RewardConfig(metric="recall", k=5)).metric == 0.25
