"""The Policy contract: something that writes the query for each information need.

What it writes for one example, :class:`PolicyOutput`, is a plain record of ``types`` (tasks build it too);
it is re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..types import Example, PolicyOutput

__all__ = ["Policy", "PolicyOutput"]


@runtime_checkable
class Policy(Protocol):
    name: str

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]: ...

    def describe(self) -> dict[str, object]:
        """Settings that identify this policy (recorded so a resumed run cannot mix policies)."""
        ...
