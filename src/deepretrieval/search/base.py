"""The Searcher contract every backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..types import Ranking


@runtime_checkable
class Searcher(Protocol):
    """Batched search: one list of hits (best first) per query.

    A query that matches nothing returns an empty list (a legitimate, scorable outcome).
    An infrastructure problem (missing index, backend outage) raises ``SearchFailure``.
    """

    def search(self, queries: Sequence[str], k: int) -> list[Ranking]: ...
