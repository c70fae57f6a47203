"""The records that cross module boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str

    @property
    def contents(self) -> str:
        """What gets indexed: title and text."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True)
class Example:
    """One information need.

    ``targets`` maps relevant document ids to graded relevance (> 0 relevant; 0 judged not relevant).
    """

    id: str
    question: str
    targets: dict[str, int]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def relevant(self) -> frozenset[str]:
        return frozenset(d for d, g in self.targets.items() if g > 0)


@dataclass(frozen=True)
class Hit:
    doc_id: str
    score: float


@dataclass
class Collection:
    """A corpus, its information needs, and named splits (split name -> example ids)."""

    name: str
    documents: list[Document]
    examples: list[Example]
    splits: dict[str, list[str]]
    # Counts of judgments naming unknown queries or documents, reported rather than silently dropped.
    warnings: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[Example]:
        if name == "all":
            return list(self.examples)
        if name not in self.splits:
            from .errors import DeepRetrievalError

            known = ", ".join(sorted(self.splits) + ["all"])
            raise DeepRetrievalError(f"collection {self.name!r} has no split {name!r} (known: {known})")
        wanted = set(self.splits[name])
        return [e for e in self.examples if e.id in wanted]
