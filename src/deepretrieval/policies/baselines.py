"""Baseline policies every trained rewriter must beat: the query as written (any task), the generator's
oracle (any task), and RM3 feedback (the retrieval task's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from ..errors import DeepRetrievalError
from ..feedback import FeedbackSettings, rm3_queries
from ..search.bm25 import BM25Searcher
from ..tasks import default_task
from ..tasks.base import Task
from ..tasks.retrieval import WeightedQuery
from ..types import Example
from .base import PolicyOutput


class OriginalPolicy:
    """The user's own query, unchanged."""

    name = "original"

    def __init__(self, task: Task | None = None) -> None:
        self.task = task or default_task()

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]:
        outputs = []
        for example in examples:
            action = self.task.query_action(self.task.user_query(example), example)
            outputs.append(PolicyOutput(query=self.task.render(action), action=action))
        return outputs

    def describe(self) -> dict[str, object]:
        return {"policy": self.name}


@dataclass(frozen=True)
class PRFSettings:
    """RM3 pseudo-relevance feedback (Lavrenko & Croft's relevance model, interpolated as in Anserini)."""

    fb_docs: int = 10
    fb_terms: int = 10
    original_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.fb_docs < 1 or self.fb_terms < 1:
            raise DeepRetrievalError(
                f"PRF needs at least 1 feedback document and term, got {self.fb_docs}, {self.fb_terms}"
            )
        if not 0 <= self.original_weight <= 1:
            raise DeepRetrievalError(f"PRF's original-query weight must be in [0, 1], got {self.original_weight}")


class PRFPolicy:
    """RM3: a first BM25 pass, a relevance model from the top documents, an interpolated weighted query.

    See ``feedback`` for the relevance model; the feedback-anchored query mode starts from this query.
    """

    name = "prf"

    def __init__(self, searcher: BM25Searcher, settings: PRFSettings | None = None) -> None:
        self.searcher = searcher
        self.settings = settings or PRFSettings()

    def describe(self) -> dict[str, object]:
        return {"policy": self.name, **asdict(self.settings)}

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]:
        s = self.settings
        settings = FeedbackSettings(s.fb_docs, s.fb_terms, s.original_weight)
        queries = rm3_queries(self.searcher, [e.question for e in examples], settings)
        actions = [WeightedQuery.of(weights) for weights in queries]
        return [PolicyOutput(query=str(action), action=action) for action in actions]


class OraclePolicy:
    """The collection's own perfect rewrite (``meta['oracle_query']``), where a generator knows it.

    Only synthetic collections have one; it shows the ceiling a learned rewriter can reach.
    """

    name = "oracle"

    def __init__(self, task: Task | None = None) -> None:
        self.task = task or default_task()

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]:
        missing = [e.id for e in examples if "oracle_query" not in e.meta]
        if missing:
            raise DeepRetrievalError(f"the oracle policy needs meta.oracle_query; example {missing[0]!r} has none")
        actions = [self.task.query_action(str(e.meta["oracle_query"]), e) for e in examples]
        return [PolicyOutput(query=self.task.render(a), action=a) for a in actions]

    def describe(self) -> dict[str, object]:
        return {"policy": self.name}
