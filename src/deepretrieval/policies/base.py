"""The Policy contract: something that writes the query for each information need."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..types import Example


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


@runtime_checkable
class Policy(Protocol):
    name: str

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]: ...

    def describe(self) -> dict[str, object]:
        """Settings that identify this policy (recorded so a resumed run cannot mix policies)."""
        ...
