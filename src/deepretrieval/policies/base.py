"""The Policy contract: something that writes the query for each information need."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..types import Example


@dataclass(frozen=True)
class PolicyOutput:
    """What a policy sends to the search backend for one example.

    ``query`` is always the final text sent (for ``expand`` mode: the user's query plus the model's
    text). ``weights`` is set instead of free text for term-weighted queries (pseudo-relevance feedback);
    ``query`` then holds a readable rendering of them. ``completion`` is the raw model output, if any.
    """

    query: str
    completion: str | None = None
    format_ok: bool | None = None
    weights: Mapping[str, float] | None = None


@runtime_checkable
class Policy(Protocol):
    name: str

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]: ...

    def describe(self) -> dict[str, object]:
        """Settings that identify this policy (recorded so a resumed run cannot mix policies)."""
        ...
