"""Index folders on disk, shared by every backend that saves one: written atomically, and never written
over a folder that is not recognisably an index of ours."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DeepRetrievalError

MANIFEST = "manifest.json"


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
