"""Rewards as data: (parsed completion, ranked ids, example, config) -> RewardResult. Pure.

An infrastructure failure (search error, missing index) gives ``total=None`` and a ``failure`` text,
never a number: TRL 1.16 keeps such a sample out of the group baseline with zero advantage.

Hack guards: a missing or empty query never earns a positive reward; a generated query longer than
``max_query_words`` earns at most 0 plus ``length_penalty``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import metrics as M
from .parsing import Parsed
from .types import Example


@dataclass(frozen=True)
class RewardConfig:
    metric: str = "recall"  # recall | ndcg | mrr | precision
    k: int = 100
    # Step table: (threshold, reward) pairs, highest threshold first; None = metric x scale.
    tiers: tuple[tuple[float, float], ...] | None = None
    below_tiers: float = 0.0
    scale: float = 1.0
    format_bonus: float = 0.0  # added when the format is right
    format_penalty: float = -1.0  # the whole reward when the format is wrong (and required)
    # False: a completion out of format is still searched (its best-effort text) without penalty.
    require_format: bool = True
    # Reward = (metric - the user's original query's metric) x scale; tiers are not applied.
    relative_to_original: bool = False
    max_query_words: int = 64
    length_penalty: float = -1.0
    empty_penalty: float = -1.0
    # Backends that count their matches: ``oversize_penalty`` is taken off when a query matches more than
    # ``oversize_factor`` x k documents (a recall reward alone invites ever broader queries).
    oversize_factor: float | None = None
    oversize_penalty: float = 0.0

    @property
    def measure_name(self) -> str:
        return f"{self.metric}@{self.k}"


@dataclass(frozen=True)
class RewardResult:
    total: float | None
    format_ok: bool
    metric: float | None
    query: str | None
    failure: str | None
    reason: str


DEEPRETRIEVAL_TIERS = ((0.7, 5.0), (0.5, 4.0), (0.4, 3.0), (0.3, 1.0), (0.1, 0.5), (0.05, 0.1))

PRESETS: dict[str, RewardConfig] = {
    # DeepRetrieval's literature-search reward: recall step table, +1 for format, -4 when out of format.
    "deepretrieval-recall": RewardConfig(
        metric="recall", k=100, tiers=DEEPRETRIEVAL_TIERS, below_tiers=-3.5, format_bonus=1.0, format_penalty=-4.0
    ),
    "recall": RewardConfig(metric="recall", k=100),
    "ndcg": RewardConfig(metric="ndcg", k=10),
    "recall-gain": RewardConfig(metric="recall", k=100, relative_to_original=True),
    "ndcg-gain": RewardConfig(metric="ndcg", k=10, relative_to_original=True),
    # A completion cut at the length cap (or otherwise out of format) is searched as it stands, no penalty:
    # for the direct variant, whose answer is pre-filled, this is what lets a small model learn on a CPU.
    "recall-lenient": RewardConfig(metric="recall", k=100, require_format=False),
    "ndcg-lenient": RewardConfig(metric="ndcg", k=10, require_format=False),
}


def metric_value(config: RewardConfig, ranked: Sequence[str], example: Example) -> float:
    return M.measure(config.measure_name, ranked, example.targets)


def tier_reward(config: RewardConfig, value: float) -> float:
    if config.tiers is None:
        return value * config.scale
    for threshold, reward in config.tiers:
        if value >= threshold:
            return reward
    return config.below_tiers


def score(
    parsed: Parsed,
    ranked_ids: Sequence[str] | None,
    example: Example,
    config: RewardConfig,
    *,
    query: str | None = None,
    original_metric: float | None = None,
    failure: str | None = None,
) -> RewardResult:
    """``query`` is the generated query that was searched (defaults to ``parsed.query``)."""
    query = parsed.query if query is None else query
    if failure is not None or ranked_ids is None:
        return RewardResult(None, parsed.format_ok, None, query, failure or "no search result", "failure")
    if config.require_format and not parsed.format_ok:
        return RewardResult(config.format_penalty, False, None, query, None, parsed.reason)
    if not query or not query.strip():
        return RewardResult(min(config.empty_penalty, 0.0), parsed.format_ok, None, query, None, "empty_query")
    value = metric_value(config, ranked_ids, example)
    if config.relative_to_original:
        if original_metric is None:
            raise ValueError("relative_to_original rewards need the original query's metric")
        total = (value - original_metric) * config.scale
    else:
        total = tier_reward(config, value)
    if parsed.format_ok:
        total += config.format_bonus
    reason = "ok" if parsed.format_ok else parsed.reason
    if len(query.split()) > config.max_query_words:
        total = min(total, 0.0) + config.length_penalty
        reason = "too_long"
    return RewardResult(total, parsed.format_ok, value, query, None, reason)
