"""The records that cross module boundaries."""

from __future__ import annotations

import datetime
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, overload


@dataclass(frozen=True)
class Document:
    """One document. ``text`` is its body (an abstract, a trial's summary). Fielded corpora (publications,
    trials) add list-valued ``fields`` (``mesh``, ``publication_types``, ``conditions``, ``interventions``)
    and a ``date`` (publication date, or a trial's start date), which Boolean engines search and filter on."""

    id: str
    title: str
    text: str
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=True, hash=False)
    date: datetime.date | None = None

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


class Hit(NamedTuple):
    doc_id: str
    score: float


class Ranking(Sequence[Hit]):
    """One query's results, best first: a sequence of :class:`Hit` stored as two parallel lists.

    Hits are made only when asked for; the hot paths (rewards, metrics) read ``ids`` directly. A batched
    search of 1,000 queries x top 100 would otherwise build 100k objects, a tenth of bm25s' own time.

    A document id appears at most once: a second occurrence is dropped (the first keeps its rank and
    score), so rewards, runs.jsonl and pytrec_eval all see the same list whatever the backend returns.
    """

    __slots__ = ("ids", "scores", "total")

    def __init__(
        self, ids: list[str] | None = None, scores: list[float] | None = None, *, total: int | None = None
    ) -> None:
        ids = ids if ids is not None else []
        scores = scores if scores is not None else [0.0] * len(ids)
        if len(scores) != len(ids):
            raise ValueError("a ranking needs one score per document id")
        # One set per ranking (a few µs for 100 ids, under 1% of a search) is the whole cost in the usual
        # case of no duplicate.
        if len(set(ids)) != len(ids):
            ids, scores = Ranking._first_occurrences(ids, scores)
        self.ids: list[str] = ids
        self.scores: list[float] = scores
        # How many documents matched in all, where the backend counts them (Boolean engines, PubMed): the
        # ranking itself holds only the first k.
        self.total: int | None = total

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> Hit: ...
    @overload
    def __getitem__(self, index: slice) -> Ranking: ...
    def __getitem__(self, index: int | slice) -> Hit | Ranking:
        if isinstance(index, slice):
            part = Ranking._trusted(self.ids[index], self.scores[index])
            part.total = self.total
            return part
        return Hit(self.ids[index], self.scores[index])

    def __iter__(self) -> Iterator[Hit]:
        return map(Hit, self.ids, self.scores)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ranking):
            return self.ids == other.ids and self.scores == other.scores
        if isinstance(other, Sequence) and not isinstance(other, str):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Ranking({len(self)} hits: {self.ids[:3]}{'…' if len(self) > 3 else ''})"

    @classmethod
    def _trusted(cls, ids: list[str], scores: list[float]) -> Ranking:
        # A part of a duplicate-free ranking is duplicate-free: skip the check.
        ranking = cls.__new__(cls)
        ranking.ids, ranking.scores, ranking.total = ids, scores, None
        return ranking

    @staticmethod
    def _first_occurrences(ids: list[str], scores: list[float]) -> tuple[list[str], list[float]]:
        first: dict[str, float] = {}
        for doc, score in zip(ids, scores, strict=True):
            first.setdefault(doc, score)
        return list(first), list(first.values())


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


@dataclass(frozen=True)
class PolicyOutput:
    """What a policy sends to the search backend for one example.

    ``action`` is what the task executes (a query string, a weighted query, a Boolean request …: see
    ``tasks``); ``query`` is its readable form (for ``expand`` mode: the user's query plus the model's text).
    ``completion`` is the raw model output, if any; ``fallback``: the completion gave nothing to search, so
    the mode's fallback was sent (nothing in rewrite, the user's query in expand, plain RM3 in the RM3 modes).
    """

    query: str
    action: Hashable | None = None  # None: the query text is the action
    completion: str | None = None
    format_ok: bool | None = None
    fallback: bool = False
