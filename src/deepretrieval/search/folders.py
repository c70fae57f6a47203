"""Index folders on disk, shared by every backend that saves one (BM25, dense, Lucene, the Boolean engine).

One shape for all: each kind declares its folder once (:class:`IndexFolder`: kind, format version, the keys
its manifest must hold) and uses it to

- **save**: parts written into a staging folder beside the target, the manifest last (its presence marks a
  complete index), then renamed over the target: never half-written, and never over a folder that is not
  recognisably an index of ours;
- **read the manifest**: no manifest is no index (:class:`SearchFailure`); an unreadable or incomplete one
  is a damaged index (:class:`CorruptIndexError`); another kind's or another format's is a
  :class:`StaleIndexError`;
- **check freshness**: built from another corpus (:func:`corpus_hash`) or with other settings:
  :class:`StaleIndexError`;
- **read parts**: a missing or unreadable file is a :class:`CorruptIndexError` (:func:`read_part`).

A small value object rather than a base class: the kinds share the folder protocol but nothing of their
construction (a bm25s retriever, a faiss index with its encoder, a Lucene reader in a JVM, a tantivy
index), so each keeps its own ``load`` and calls these pieces in the same order.

Manifests are read as every version wrote them: bm25 manifests name no kind (they carry bm25s's version),
Lucene's name it ``backend``, dense and Boolean ones ``kind``.

Indexes built without a folder of their own are cached under :func:`index_cache_dir` (look it up here, at
call time: tests point it elsewhere).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import CorruptIndexError, DeepRetrievalError, SearchFailure, StaleIndexError
from ..types import Document

MANIFEST = "manifest.json"
UNREADABLE = (OSError, ValueError, EOFError, TypeError)
T = TypeVar("T")


def index_cache_dir() -> Path:
    """Where indexes built without an explicit ``--index`` folder are kept (beside the model cache)."""
    from ..models import cache_root

    return cache_root() / "indexes"


def corpus_hash(documents: Sequence[Document], *, fielded: bool = False) -> str:
    """Identity of a corpus, in order: each document's id, title and text; ``fielded``: its date and list
    fields too (the Boolean engine indexes them; a text index does not, and a changed date must not make
    its index stale)."""
    digest = hashlib.sha256()
    for d in documents:
        parts = [d.id, d.title, d.text]
        if fielded:
            parts.append(d.date.isoformat() if d.date else "")
            for key in sorted(d.fields):
                parts.append(key)
                parts.extend(d.fields[key])
                parts.append("\x1d")  # ends one field's values: ("a", "b") and ("a b",) must differ
        for part in parts:
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\x1f")
        digest.update(b"\x1e")
    return digest.hexdigest()


@dataclass(frozen=True)
class IndexFolder:
    """One index kind's folder: ``kind`` (as a recipe's ``backend.kind`` names it), the ``format`` version this
    code reads and writes, the ``keys`` its manifest must hold, and ``hint``: how a user builds one."""

    kind: str
    format: int
    keys: tuple[str, ...] = ("corpus_sha256", "documents", "settings")
    hint: str = ""  # e.g. " with `deepretrieval index`"

    def save(
        self,
        directory: str | Path,
        manifest: Mapping[str, Any] | Callable[[Path], Mapping[str, Any]],
        write_parts: Callable[[Path], None],
    ) -> Path:
        """Write an index atomically: ``write_parts(staging)``, then the manifest (or ``manifest(staging)``, when
        it describes what was written), then the rename into place."""
        directory = Path(directory)
        with staged_index(directory) as staging:
            write_parts(staging)
            content = manifest(staging) if callable(manifest) else manifest
            (staging / MANIFEST).write_text(json.dumps(content, indent=2))  # last: it marks completion
        return directory

    def manifest(self, directory: Path) -> dict[str, Any]:
        """The folder's manifest, checked to be this kind's, this format's and complete."""
        path = directory / MANIFEST
        if not path.exists():
            raise SearchFailure(f"no index at {directory}; build it{self.hint}")
        manifest = read_part(directory, MANIFEST, lambda: json.loads(path.read_text(encoding="utf-8")))
        if not isinstance(manifest, dict):
            raise CorruptIndexError(directory, f"{MANIFEST} lacks one of {', '.join(('format', *self.keys))}")
        other = manifest_kind(manifest)
        if other is not None and other != self.kind:
            raise StaleIndexError(
                f"index at {directory} is not a {self.kind} index (a {other} index is there); "
                "choose another folder or rebuild it"
            )
        if any(k not in manifest for k in ("format", *self.keys)):
            raise CorruptIndexError(directory, f"{MANIFEST} lacks one of {', '.join(('format', *self.keys))}")
        if manifest["format"] != self.format:
            raise StaleIndexError(
                f"index at {directory} has format {manifest['format']} (this version reads {self.format}); "
                f"rebuild it{self.hint}"
            )
        return manifest

    def check_fresh(
        self,
        directory: Path,
        manifest: Mapping[str, Any],
        expected_corpus_hash: str | None,
        saved: Mapping[str, Any] | None = None,
        wanted: Mapping[str, Any] | None = None,
        what: str = "other settings",
    ) -> None:
        """Refuse an index built from another corpus than expected, or whose ``saved`` settings differ from
        the ``wanted`` ones (field by field; None: any)."""
        check_corpus(directory, manifest, expected_corpus_hash, self.hint)
        if saved is not None and wanted is not None:
            changed = [k for k, v in wanted.items() if saved.get(k) != v]
            if changed:
                raise StaleIndexError(
                    f"index at {directory} was built with {what} ({', '.join(changed)} differ); rebuild it{self.hint}"
                )

    def settings(self, directory: Path, manifest: Mapping[str, Any], cls: Callable[..., T], names: set[str]) -> T:
        """``cls(**manifest['settings'])``; every field must be there (a default filled in would be a silent guess)."""
        saved = manifest["settings"]
        if not isinstance(saved, dict) or set(saved) != names:
            raise CorruptIndexError(directory, f"{MANIFEST} 'settings' must name exactly {', '.join(sorted(names))}")
        try:
            return cls(**saved)
        except (TypeError, ValueError, DeepRetrievalError) as exc:
            raise CorruptIndexError(directory, f"{MANIFEST} has unusable settings ({exc})") from None


def manifest_kind(manifest: Mapping[str, Any]) -> str | None:
    """The kind of index a manifest describes, as each version wrote it (None: it does not say)."""
    kind = manifest.get("kind") or manifest.get("backend")
    if kind is None and "bm25s" in manifest:
        return "bm25"
    return kind if isinstance(kind, str) else None


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
