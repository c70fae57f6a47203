"""BM25 search on bm25s (with PyStemmer): build, save, memory-mapped load, batched search.

An index folder holds bm25s's own files plus ours: ``manifest.json`` (corpus hash, settings, versions),
``doc_ids.json``, and the analysed corpus as CSR arrays (``doc_tokens.npy``, ``doc_offsets.npy``) that
pseudo-relevance feedback reads term frequencies from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeepRetrievalError, SearchFailure, StaleIndexError
from ..types import Document, Ranking

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class BM25Settings:
    k1: float = 0.9
    b: float = 0.4
    method: str = "lucene"  # bm25s variants: robertson, atire, bm25l, bm25+, lucene
    stemmer: str | None = "english"
    stopwords: str | None = "en"


def corpus_hash(documents: Sequence[Document]) -> str:
    """Identity of a corpus: ids, titles and texts, in order."""
    digest = hashlib.sha256()
    for d in documents:
        for part in (d.id, d.title, d.text):
            digest.update(part.encode("utf-8"))
            digest.update(b"\x1f")
        digest.update(b"\x1e")
    return digest.hexdigest()


class BM25Searcher:
    """Implements the ``Searcher`` protocol over a bm25s index."""

    def __init__(
        self,
        retriever: Any,
        doc_ids: Sequence[str],
        settings: BM25Settings,
        doc_tokens: np.ndarray,
        doc_offsets: np.ndarray,
        corpus_sha: str,
    ) -> None:
        self.retriever = retriever
        self.doc_ids = np.asarray(doc_ids, dtype=object)
        self._row = {d: i for i, d in enumerate(doc_ids)}
        self.settings = settings
        self.doc_tokens, self.doc_offsets = doc_tokens, doc_offsets
        self.corpus_sha = corpus_sha
        self._stemmer = _make_stemmer(settings.stemmer)
        self._id_to_token: list[str] | None = None
        self._matrix: Any = None

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        documents: Sequence[Document],
        settings: BM25Settings | None = None,
        *,
        show_progress: bool = False,
    ) -> BM25Searcher:
        import bm25s

        settings = settings or BM25Settings()
        if not documents:
            raise SearchFailure("cannot index an empty corpus")
        stemmer = _make_stemmer(settings.stemmer)
        tokenized = bm25s.tokenize(
            [d.contents for d in documents],
            stopwords=settings.stopwords or [],
            stemmer=stemmer,
            return_ids=True,
            show_progress=show_progress,
        )
        retriever = bm25s.BM25(k1=settings.k1, b=settings.b, method=settings.method)
        retriever.index(tokenized, show_progress=show_progress)
        lengths = np.fromiter((len(t) for t in tokenized.ids), dtype=np.int64, count=len(tokenized.ids))
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = np.fromiter((t for doc in tokenized.ids for t in doc), dtype=np.int32, count=int(offsets[-1]))
        return cls(retriever, [d.id for d in documents], settings, tokens, offsets, corpus_hash(documents))

    def save(self, directory: str | Path) -> Path:
        """Write the index atomically: a crash never leaves a half-written folder in place.

        An existing folder is replaced only when it is recognisably an index of ours (it has a manifest) or
        empty: pointing ``--index`` at a folder of the user's own files must never delete them.
        """
        directory = Path(directory)
        if directory.exists() and not _replaceable(directory):
            raise DeepRetrievalError(
                f"{directory} exists and is not an index (no {MANIFEST}); refusing to replace it: "
                "choose another folder or remove it yourself"
            )
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        try:
            self.retriever.save(str(staging), show_progress=False)
            np.save(staging / "doc_tokens.npy", self.doc_tokens)
            np.save(staging / "doc_offsets.npy", self.doc_offsets)
            (staging / "doc_ids.json").write_text(json.dumps(list(self.doc_ids)))
            (staging / MANIFEST).write_text(json.dumps(self._manifest(), indent=2))
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(staging, directory)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return directory

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        mmap: bool = True,
        expected_corpus_hash: str | None = None,
        settings: BM25Settings | None = None,
    ) -> BM25Searcher:
        """Load an index; refuse one built from another corpus or with other settings."""
        import bm25s

        directory = Path(directory)
        manifest_path = directory / MANIFEST
        if not manifest_path.exists():
            raise SearchFailure(f"no index at {directory}; build it with `deepretrieval index`")
        manifest = json.loads(manifest_path.read_text())
        saved = BM25Settings(**manifest["settings"])
        if expected_corpus_hash is not None and manifest["corpus_sha256"] != expected_corpus_hash:
            raise StaleIndexError(
                f"index at {directory} is stale: it was built from another corpus "
                f"({manifest['documents']} documents); rebuild it with `deepretrieval index`"
            )
        if settings is not None and settings != saved:
            changed = [k for k, v in asdict(settings).items() if asdict(saved)[k] != v]
            raise StaleIndexError(
                f"index at {directory} was built with other settings ({', '.join(changed)} differ); rebuild it"
            )
        retriever = bm25s.BM25.load(str(directory), mmap=mmap, load_corpus=False, show_progress=False)
        mode = "r" if mmap else None
        tokens = np.load(directory / "doc_tokens.npy", mmap_mode=mode)
        offsets = np.load(directory / "doc_offsets.npy", mmap_mode=mode)
        doc_ids = json.loads((directory / "doc_ids.json").read_text())
        return cls(retriever, doc_ids, saved, tokens, offsets, manifest["corpus_sha256"])

    def _manifest(self) -> dict[str, Any]:
        import bm25s

        return {
            "format": FORMAT_VERSION,
            "corpus_sha256": self.corpus_sha,
            "documents": len(self.doc_ids),
            "settings": asdict(self.settings),
            "bm25s": getattr(bm25s, "__version__", "unknown"),
        }

    def describe(self) -> dict[str, object]:
        return {"backend": "bm25s", "corpus_sha256": self.corpus_sha, **asdict(self.settings)}

    # -- analysis ------------------------------------------------------------------------------
    def analyze(self, text: str) -> list[str]:
        """The index's analysis of ``text`` (lower-casing, stopwords, stemming); in-vocabulary terms only."""
        return [t for t in self._analyze_many([text])[0] if t in self.retriever.vocab_dict]

    def _analyze_many(self, texts: Sequence[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(
            list(texts),
            stopwords=self.settings.stopwords or [],
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )

    def doc_term_counts(self, doc_id: str) -> dict[str, int]:
        """Analysed term frequencies of one document (for pseudo-relevance feedback)."""
        if self._id_to_token is None:
            vocab = self.retriever.vocab_dict
            names = [""] * (max(vocab.values()) + 1)
            for token, i in vocab.items():
                names[i] = token
            self._id_to_token = names
        row = self._row[doc_id]
        ids = self.doc_tokens[self.doc_offsets[row] : self.doc_offsets[row + 1]]
        return {self._id_to_token[int(i)]: c for i, c in Counter(ids.tolist()).items()}

    # -- search --------------------------------------------------------------------------------
    def search(self, queries: Sequence[str], k: int) -> list[Ranking]:
        if not queries:
            return []
        k = min(k, len(self.doc_ids))
        vocab = self.retriever.vocab_dict
        token_ids = [[vocab[t] for t in q if t in vocab] for q in self._analyze_many(queries)]
        results = [Ranking() for _ in queries]
        todo = [i for i, ids in enumerate(token_ids) if ids]
        if not todo:
            return results
        docs, scores = self.retriever.retrieve(
            [token_ids[i] for i in todo], k=k, show_progress=False, return_as="tuple"
        )
        # Scores are sorted, so the positive ones are a prefix: one count per row, one tolist per array.
        counts = (scores > 0).sum(axis=1).tolist()
        names, values = self.doc_ids[docs].tolist(), scores.tolist()
        for row, i in enumerate(todo):
            n = counts[row]
            results[i] = Ranking(names[row][:n], values[row][:n])
        return results

    def search_weighted(self, weights: Sequence[Mapping[str, float]], k: int) -> list[Ranking]:
        """Score = sum over analysed terms of weight x BM25 term score (RM3 feedback queries)."""
        matrix = self._score_matrix()
        vocab = self.retriever.vocab_dict
        k = min(k, len(self.doc_ids))
        results = []
        for query in weights:
            terms = [(vocab[t], w) for t, w in query.items() if t in vocab and w != 0]
            if not terms:
                results.append(Ranking())
                continue
            ids = np.fromiter((t for t, _ in terms), dtype=np.int64, count=len(terms))
            w = np.fromiter((x for _, x in terms), dtype=np.float64, count=len(terms))
            scores = matrix[:, ids] @ w
            nonocc = self.retriever.nonoccurrence_array
            if nonocc is not None:
                scores = scores + float(np.asarray(nonocc)[ids] @ w)
            results.append(self._top_k(np.asarray(scores).ravel(), k))
        return results

    def _score_matrix(self) -> Any:
        if self._matrix is None:
            from scipy.sparse import csc_matrix

            s = self.retriever.scores
            shape = (int(s["num_docs"]), len(s["indptr"]) - 1)
            self._matrix = csc_matrix((s["data"], s["indices"], s["indptr"]), shape=shape)
        return self._matrix

    def _top_k(self, scores: np.ndarray, k: int) -> Ranking:
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]
        top = top[scores[top] > 0]
        return Ranking(self.doc_ids[top].tolist(), scores[top].tolist())


def _replaceable(directory: Path) -> bool:
    return directory.is_dir() and ((directory / MANIFEST).is_file() or not any(directory.iterdir()))


def _make_stemmer(language: str | None) -> Any:
    if not language:
        return None
    import Stemmer

    return Stemmer.Stemmer(language)
