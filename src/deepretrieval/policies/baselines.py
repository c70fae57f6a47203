"""Baseline policies every trained rewriter must beat, for any task: the query as written and the
generator's oracle. A family's own baselines live beside it (the retrieval task's RM3 feedback:
``tasks.retrieval.PRFPolicy``), listed by its ``Task.baselines()``."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import DeepRetrievalError
from ..tasks import default_task
from ..tasks.base import Task
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
