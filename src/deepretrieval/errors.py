"""Exceptions a user can act on. The CLI prints them as one clean line."""

from __future__ import annotations

from pathlib import Path


class DeepRetrievalError(Exception):
    """Base class: anything the user can fix (bad input, stale index, bad flag)."""


class DataError(DeepRetrievalError):
    """Malformed input data. The message names the file and, where known, the line or field."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class StaleIndexError(DeepRetrievalError):
    """An index on disk was built from another corpus or with other settings."""


class CorruptIndexError(StaleIndexError):
    """An index folder that is incomplete or unreadable (a copy cut short, a file deleted or edited).

    A kind of stale index: what the user does about either is rebuild it.
    """

    def __init__(self, directory: str | Path, problem: str) -> None:
        super().__init__(f"index at {directory} is damaged: {problem}; rebuild it with `deepretrieval index`")


class SearchFailure(DeepRetrievalError):
    """An infrastructure failure of a search backend (missing index, outage, timeout).

    Never converted into a metric value or a reward: callers must surface it.
    """


class EndpointFailure(DeepRetrievalError):
    """A model endpoint gave no usable reply after its retries (outage, error status, empty or malformed reply).

    Never turned into an empty query and scored: the evaluation stops and says so; rerunning resumes.
    """
