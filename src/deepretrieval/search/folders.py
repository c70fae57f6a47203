"""Index folders on disk, shared by every backend that saves one: written atomically, and never written
over a folder that is not recognisably an index of ours; indexes built without a folder of their own are
cached under :func:`index_cache_dir` (look it up here, at call time: tests point it elsewhere)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..errors import CorruptIndexError, DeepRetrievalError, StaleIndexError

MANIFEST = "manifest.json"
UNREADABLE = (OSError, ValueError, EOFError, TypeError)
T = TypeVar("T")


def index_cache_dir() -> Path:
    """Where indexes built without an explicit ``--index`` folder are kept (beside the model cache)."""
    from ..models import cache_root

    return cache_root() / "indexes"


def read_part(directory: Path, name: str, read: Callable[[], T]) -> T:
    """``read()`` of the index's part ``name``, a damaged or missing file reported as one line."""
    try:
        return read()
    except FileNotFoundError as exc:
        missing = Path(exc.filename).name if exc.filename else name
        raise CorruptIndexError(directory, f"{missing} is missing") from None
    except UNREADABLE as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CorruptIndexError(directory, f"{name} cannot be read ({reason})") from None


def check_corpus(
    directory: Path, manifest: Mapping[str, Any], expected_corpus_hash: str | None, hint: str = ""
) -> None:
    """Refuse an index built from another corpus than the one given (``hint``: how to rebuild it)."""
    if expected_corpus_hash is not None and manifest["corpus_sha256"] != expected_corpus_hash:
        raise StaleIndexError(
            f"index at {directory} is stale: it was built from another corpus "
            f"({manifest['documents']} documents); rebuild it{hint}"
        )


@contextmanager
def staged_index(directory: Path) -> Iterator[Path]:
    """A staging folder beside ``directory`` to write an index into; on success it replaces ``directory``.

    An existing folder is replaced only when it has a manifest or is empty: pointing ``--index`` at a
    folder of the user's own files must never delete them. The old index moves aside before the new one
    moves in, so the folder is never half-written and a crash between the two renames leaves the old index
    intact beside it. The writer puts the manifest in last: its presence marks a complete index.
    """
    if directory.exists() and not replaceable(directory):
        raise DeepRetrievalError(
            f"{directory} exists and is not an index (no {MANIFEST}); refusing to replace it: "
            "choose another folder or remove it yourself"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        yield staging
        _swap_into_place(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replaceable(directory: Path) -> bool:
    return directory.is_dir() and ((directory / MANIFEST).is_file() or not any(directory.iterdir()))


def _swap_into_place(staging: Path, directory: Path) -> None:
    if not directory.exists():
        os.replace(staging, directory)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{directory.name}-old-", dir=directory.parent))
    os.replace(directory, retired / "index")
    os.replace(staging, directory)
    shutil.rmtree(retired, ignore_errors=True)
