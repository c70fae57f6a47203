"""BM25 search on bm25s (with PyStemmer): build, save, memory-mapped load, batched search.

An index folder holds bm25s's own files plus ours: ``manifest.json`` (corpus hash, settings, versions),
``doc_ids.json``, and the analysed corpus as CSR arrays (``doc_tokens.npy``, ``doc_offsets.npy``) that
pseudo-relevance feedback reads term frequencies from.

Order: score descending, then corpus row ascending, exact at every k (see :mod:`.base`), in the plain,
batched and weighted searches alike; a document scoring 0 (no query term) is not a hit.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptIndexError, DeepRetrievalError, SearchFailure
from ..types import Document, Ranking
from .base import TextSearcher, top_rows
from .folders import MANIFEST, IndexFolder, corpus_hash, read_part
from .specs import BM25_METHODS, BM25Spec

METHODS = BM25_METHODS
FORMAT_VERSION = 1
FOLDER = IndexFolder("bm25", FORMAT_VERSION, hint=" with `deepretrieval index`")


@dataclass(frozen=True)
class BM25Settings:
    """BM25's settings, built from a ``BM25Spec`` (its defaults: ``search.specs``)."""

    k1: float = BM25Spec.default("k1")
    b: float = BM25Spec.default("b")
    method: str = BM25Spec.default("method")  # bm25s variants: robertson, atire, bm25l, bm25+, lucene
    stemmer: str | None = BM25Spec.default("stemmer")
    stopwords: str | None = BM25Spec.default("stopwords")

    def __post_init__(self) -> None:
        """Reject what bm25s / PyStemmer would fail on deep inside indexing (or silently accept)."""
        if self.method not in METHODS:
            raise DeepRetrievalError(f"unknown BM25 method {self.method!r} (known: {', '.join(METHODS)})")
        if not (self.k1 >= 0 and 0 <= self.b <= 1):
            raise DeepRetrievalError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")
        if self.stemmer is not None:
            import Stemmer

            if self.stemmer not in Stemmer.algorithms():
                known = ", ".join(Stemmer.algorithms())
                raise DeepRetrievalError(f"unknown stemmer {self.stemmer!r} (known: {known}, or none)")
        if self.stopwords is not None:
            from bm25s.tokenization import _infer_stopwords

            try:
                _infer_stopwords(self.stopwords)
            except ValueError:
                raise DeepRetrievalError(
                    f"unknown stopword list {self.stopwords!r} (bm25s knows en, de, nl, fr, es, pt, it, ru, sv, no, "
                    "zh, tr, ko, da and their English names, or none)"
                ) from None


class BM25Searcher(TextSearcher):
    """A :class:`~.base.TextSearcher` over a bm25s index."""

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
        if not tokenized.vocab:
            raise DeepRetrievalError(
                f"nothing to index: none of the {len(documents):,} documents has a word outside the stopword list"
            )
        retriever.index(tokenized, show_progress=show_progress)
        lengths = np.fromiter((len(t) for t in tokenized.ids), dtype=np.int64, count=len(tokenized.ids))
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = np.fromiter((t for doc in tokenized.ids for t in doc), dtype=np.int32, count=int(offsets[-1]))
        return cls(retriever, [d.id for d in documents], settings, tokens, offsets, corpus_hash(documents))

    def save(self, directory: str | Path) -> Path:
        """Write the index atomically (see :class:`~.folders.IndexFolder`: never over a folder that is not an index)."""

        def write_parts(staging: Path) -> None:
            self.retriever.save(str(staging), show_progress=False)
            np.save(staging / "doc_tokens.npy", self.doc_tokens)
            np.save(staging / "doc_offsets.npy", self.doc_offsets)
            (staging / "doc_ids.json").write_text(json.dumps(list(self.doc_ids)))

        return FOLDER.save(directory, self._manifest(), write_parts)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        mmap: bool = True,
        expected_corpus_hash: str | None = None,
        settings: BM25Settings | None = None,
    ) -> BM25Searcher:
        """Load an index; refuse one built from another corpus or with other settings, or that is incomplete."""
        import bm25s

        directory = Path(directory)
        manifest = FOLDER.manifest(directory)
        saved = FOLDER.settings(directory, manifest, BM25Settings, {f.name for f in fields(BM25Settings)})
        FOLDER.check_fresh(
            directory, manifest, expected_corpus_hash, asdict(saved), None if settings is None else asdict(settings)
        )
        retriever = read_part(
            directory,
            "bm25s's files",
            lambda: bm25s.BM25.load(str(directory), mmap=mmap, load_corpus=False, show_progress=False),
        )
        mode = "r" if mmap else None
        tokens = read_part(directory, "doc_tokens.npy", lambda: np.load(directory / "doc_tokens.npy", mmap_mode=mode))
        offsets = read_part(
            directory, "doc_offsets.npy", lambda: np.load(directory / "doc_offsets.npy", mmap_mode=mode)
        )
        doc_ids = read_part(
            directory, "doc_ids.json", lambda: json.loads((directory / "doc_ids.json").read_text(encoding="utf-8"))
        )
        _check_sizes(directory, manifest["documents"], retriever, doc_ids, tokens, offsets)
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
        return [t for t in self.analyze_many([text])[0] if t in self.retriever.vocab_dict]

    def analyze_many(self, texts: Sequence[str]) -> list[list[str]]:
        """The index's analysis of each text, in-vocabulary or not."""
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
        """Per query: bm25s's scores for every document, then the exact top k with ties by corpus row.

        bm25s's own ``retrieve`` cuts with a partial sort, which keeps an arbitrary subset of the documents
        tied at the cut and orders ties differently at each k; the scores are bm25s's own either way.
        """
        if not queries:
            return []
        k = min(k, len(self.doc_ids))
        vocab = self.retriever.vocab_dict
        results = []
        for terms in self.analyze_many(queries):
            ids = [vocab[t] for t in terms if t in vocab]
            if not ids:
                results.append(Ranking())
                continue
            results.append(self._top_k(np.asarray(self.retriever.get_scores_from_ids(ids)), k))
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
        """The first k documents by (score descending, corpus row ascending); a zero score is no hit."""
        top = top_rows(scores, k)
        top = top[scores[top] > 0]
        return Ranking(self.doc_ids[top].tolist(), scores[top].tolist())


def _check_sizes(
    directory: Path, documents: object, retriever: Any, doc_ids: object, tokens: np.ndarray, offsets: np.ndarray
) -> None:
    """The parts must describe one corpus: a file from another build would give wrong ids, not an error."""
    if not isinstance(doc_ids, list) or not all(isinstance(d, str) for d in doc_ids):
        raise CorruptIndexError(directory, "doc_ids.json is not a list of document ids")
    n = len(doc_ids)
    sizes = {
        f"{MANIFEST} documents": documents,
        "bm25s num_docs": retriever.scores.get("num_docs"),
        "doc_offsets.npy length - 1": len(offsets) - 1 if offsets.ndim == 1 else None,
    }
    wrong = [f"{name} = {value}" for name, value in sizes.items() if value != n]
    if not wrong and (tokens.ndim != 1 or len(tokens) != int(offsets[-1])):
        wrong.append(f"doc_tokens.npy holds {tokens.size} tokens, doc_offsets.npy ends at {int(offsets[-1])}")
    if wrong:
        raise CorruptIndexError(directory, f"its parts disagree (doc_ids.json has {n} ids; {'; '.join(wrong)})")


def _make_stemmer(language: str | None) -> Any:
    if not language:
        return None
    import Stemmer

    return Stemmer.Stemmer(language)
