"""The retrieval family: bag-of-words queries on a BM25 index (BEIR-style collections, classic test
collections, the generated demo), rewarded and evaluated by recall and nDCG of the judged documents.

Actions: a query string (what bm25s analyses); a :class:`WeightedQuery` (analysed terms with weights, as
RM3 writes them: the ``feedback`` and ``select-rm3`` modes' edited RM3 query, the ``prf`` baseline's); or an
:class:`RM3Query` (a text RM3 still has to expand: the ``expand-rm3`` mode's, executed as RM3's first pass
and then as the weighted query it gives). Modes: ``rewrite`` (the model's query replaces the user's) and
``expand`` (appended to it, as Query2doc does). Backend: ``backend: {kind: bm25, k1, b, method, stemmer,
stopwords}``. Baseline: ``prf``, RM3 pseudo-relevance feedback (:class:`PRFPolicy`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import DeepRetrievalError
from ..modes import compose_query
from ..prompts import PromptSettings
from ..rewards import PRESETS
from ..search import folders
from ..search.base import TextSearcher, has_terms
from ..types import Collection, Example, PolicyOutput, Ranking
from .base import Action, Outcome, Task


@dataclass(frozen=True)
class WeightedQuery:
    """Analysed terms with weights: score = sum of weight x BM25 term score (hashable, for de-duplication)."""

    terms: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, weights: Mapping[str, float]) -> WeightedQuery:
        return cls(tuple(sorted(weights.items(), key=lambda tw: (-tw[1], tw[0]))))

    def __str__(self) -> str:
        return " ".join(f"{t}^{w:.4f}" for t, w in self.terms)


@dataclass(frozen=True)
class RM3Query:
    """RM3 on ``text``, still to run: its first pass picks the feedback documents; the relevance model's
    original query is ``text`` itself (mode ``expand-rm3``: the user's query with the model's expansion).
    Executing it gives a :class:`WeightedQuery`, then its ranking."""

    text: str

    def __str__(self) -> str:
        return f"rm3({self.text})"


BACKEND_KINDS = ("bm25", "dense", "hybrid", "lucene")
HYBRID_FIELDS = ("rrf_k", "depth")


def backend_kind(spec: Mapping[str, Any]) -> str:
    """The ``kind`` of a recipe's ``backend:`` section (bm25 when absent)."""
    kind = spec.get("kind", "bm25")
    if kind not in BACKEND_KINDS:
        raise DeepRetrievalError(
            f"recipe field backend.kind: the retrieval task has no backend {kind!r} (known: {', '.join(BACKEND_KINDS)})"
        )
    return kind


def bm25_settings(spec: Mapping[str, Any]):
    """BM25Settings from a recipe's ``backend:`` section (``kind: bm25``, the default); errors name the field."""
    from ..search.bm25 import BM25Settings

    values = {k: v for k, v in spec.items() if k != "kind"}
    kind = spec.get("kind", "bm25")
    if kind != "bm25":
        backend_kind(spec)  # an unknown kind is named as such
        raise DeepRetrievalError(f"recipe field backend.kind: {kind!r} has no BM25 settings (kind: bm25 has)")
    if "bm25_method" in values:  # the flat recipes' spelling
        values["method"] = values.pop("bm25_method")
    for key in ("stemmer", "stopwords"):
        if isinstance(values.get(key), str) and values[key].strip().lower() in ("none", ""):
            values[key] = None
    known = set(BM25Settings.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise DeepRetrievalError(
            f"recipe field backend.{unknown[0]}: unknown (known: kind, {', '.join(sorted(known))})"
        )
    return BM25Settings(**values)


def dense_settings(spec: Mapping[str, Any]):
    """DenseSettings from a ``backend: {kind: dense, ...}`` section; errors name the field."""
    from ..search import dense

    return dense.dense_settings({k: v for k, v in spec.items() if k != "kind"})


def hybrid_specs(spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """A ``backend: {kind: hybrid, ...}`` section split into its BM25 fields, its dense fields and the fusion
    settings (one flat namespace: the BM25 and dense field names do not overlap); errors name the field."""
    from ..search.bm25 import BM25Settings
    from ..search.dense import DenseSettings
    from ..search.hybrid import HybridSettings

    lexical_names = {*BM25Settings.__dataclass_fields__, "bm25_method"}
    dense_names = set(DenseSettings.__dataclass_fields__)
    values = {k: v for k, v in spec.items() if k != "kind"}
    unknown = sorted(set(values) - lexical_names - dense_names - set(HYBRID_FIELDS))
    if unknown:
        known = sorted({*BM25Settings.__dataclass_fields__, *dense_names, *HYBRID_FIELDS})
        raise DeepRetrievalError(f"recipe field backend.{unknown[0]}: unknown (known: kind, {', '.join(known)})")
    lexical = {k: v for k, v in values.items() if k in lexical_names}
    dense = {k: v for k, v in values.items() if k in dense_names}
    fusion = HybridSettings(**{k: v for k, v in values.items() if k in HYBRID_FIELDS})
    bm25_settings(lexical)  # validated now, not after the dense part is built
    dense_settings(dense)
    return lexical, dense, fusion


def bm25_backend(collection: Collection, spec: Mapping[str, Any], index: Path | None):
    """The BM25 index at ``index`` (checked against the corpus and the settings given), or built and saved
    there. ``spec`` empty: whatever an existing index was built with (the defaults for a new one).

    Without ``index`` the index is cached under ``search.folders.index_cache_dir()``, keyed by the corpus
    and the settings, so that repeated commands and runs on one collection index it once.
    """
    from ..search.bm25 import BM25Searcher
    from ..search.folders import MANIFEST, corpus_hash

    settings = bm25_settings(spec) if spec else None
    sha = corpus_hash(collection.documents)
    if index is None:
        settings = settings or bm25_settings({})
        key = hashlib.sha256(json.dumps([sha, asdict(settings)], sort_keys=True).encode()).hexdigest()[:24]
        index = folders.index_cache_dir() / key
    if (index / MANIFEST).exists():
        return BM25Searcher.load(index, expected_corpus_hash=sha, settings=settings)
    searcher = BM25Searcher.build(collection.documents, settings or bm25_settings({}))
    searcher.save(index)
    return searcher


def dense_backend(collection: Collection, spec: Mapping[str, Any], index: Path | None):
    """The dense index at ``index`` (checked against the corpus, the build settings given and the model), or
    encoded and saved there; ``spec`` without fields: whatever an existing index was built with. Cached
    under ``search.folders.index_cache_dir()`` like BM25's, keyed by the corpus and the build settings
    (search-time settings such as ``nprobe`` reuse it). Encoding progress is kept in shards beside the
    folder, so an interrupted build resumes; they are removed once the index is saved."""
    from ..errors import StaleIndexError
    from ..search.dense import DenseSearcher, DenseSettings, clear_shards
    from ..search.folders import MANIFEST, corpus_hash

    settings = dense_settings(spec) if set(spec) - {"kind"} else None
    sha = corpus_hash(collection.documents)
    cached = index is None
    if index is None:
        settings = settings or DenseSettings()
        key = hashlib.sha256(json.dumps(["dense", sha, settings.build_fields()], sort_keys=True).encode())
        index = folders.index_cache_dir() / f"dense-{key.hexdigest()[:24]}"
    if (index / MANIFEST).exists():
        try:
            return DenseSearcher.load(index, expected_corpus_hash=sha, settings=settings)
        except StaleIndexError:
            # The key holds the corpus and the settings, not the weights: a cached index whose model
            # changed (a new package version, a retrained folder) is rebuilt; a user's own folder is not.
            if not cached:
                raise
    shards = index.parent / f".{index.name}.shards"
    searcher = DenseSearcher.build(collection.documents, settings or DenseSettings(), shards=shards, show_progress=True)
    searcher.save(index)
    clear_shards(shards)
    return searcher


def hybrid_backend(collection: Collection, spec: Mapping[str, Any], index: Path | None):
    """RRF of the BM25 and the dense backend. Each part is the index its own kind would open (cached alike,
    so a hybrid run reuses a BM25 run's index); ``index`` holds them as ``bm25/`` and ``dense/``."""
    from ..search.hybrid import HybridSearcher

    lexical, dense, fusion = hybrid_specs(spec)
    if index is not None and index.exists():
        names = {p.name for p in index.iterdir()} if index.is_dir() else {""}
        if names and not names & {"bm25", "dense"}:
            raise DeepRetrievalError(
                f"{index} exists and is not a hybrid index (no bm25/ or dense/ inside); choose another folder"
            )
    return HybridSearcher(
        bm25_backend(collection, lexical, None if index is None else index / "bm25"),
        dense_backend(collection, dense, None if index is None else index / "dense"),
        fusion,
    )


class RetrievalTask(Task):
    name = "retrieval"
    presets = PRESETS
    measures = ("ndcg@10", "recall@10", "recall@100", "recall@1000", "mrr@10")
    modes = ("rewrite", "expand", "expand-rm3", "select-rm3", "feedback")
    fallback_name = "prf"
    default_reward = "recall-lenient"  # the best measured on 2 CPU cores (docs/BENCHMARKS.md)
    backend_flags = ("k1", "b", "method", "stemmer", "stopwords")  # BM25's, as `deepretrieval index` takes them

    def backend(self, collection: Collection, spec: Mapping[str, Any], *, index: Path | None = None):
        """The backend ``spec`` names (``kind``: bm25, the default; dense; hybrid; lucene, the optional
        Pyserini extra), opened from ``index`` or built and saved there (without ``index``: cached under
        ``search.folders.index_cache_dir()``, keyed by the corpus and the settings). See
        :func:`bm25_backend`, :func:`dense_backend`, :func:`hybrid_backend`, ``search.lucene.lucene_backend``."""
        kind = backend_kind(spec)
        if kind == "lucene":
            from ..search.lucene import lucene_backend

            return lucene_backend(collection, {k: v for k, v in spec.items() if k != "kind"}, index)
        if kind == "dense":
            return dense_backend(collection, spec, index)
        if kind == "hybrid":
            return hybrid_backend(collection, spec, index)
        return bm25_backend(collection, spec, index)

    def open_backend(self, index: Path, spec: Mapping[str, Any]):
        """A BM25 or dense index folder, opened without its collection (not checked against a corpus)."""
        kind = backend_kind(spec)
        if kind == "bm25":
            from ..search.bm25 import BM25Searcher

            return BM25Searcher.load(index, settings=bm25_settings(spec) if set(spec) - {"kind"} else None)
        if kind == "dense":
            from ..search.dense import DenseSearcher

            return DenseSearcher.load(index, settings=dense_settings(spec) if set(spec) - {"kind"} else None)
        raise DeepRetrievalError(f"a {kind} backend is opened from its collection: give --data")

    def needs_context(self, settings: PromptSettings) -> bool:
        return settings.context_docs > 0 or settings.mode in ("feedback", "select-rm3")

    def context(self, backend: TextSearcher, collection: Collection, settings: PromptSettings):
        """Titles of the top first-pass hits (``context_docs``); in feedback mode, the RM3 query and menu; in
        select-rm3 mode, the numbered feedback documents (which replace the titles)."""
        from ..feedback import FeedbackProvider, SelectionProvider
        from ..titles import TitleProvider

        providers: list[Any] = []
        if settings.mode == "select-rm3":
            providers.append(SelectionProvider(backend, collection.documents))
        elif settings.context_docs:
            providers.append(TitleProvider(backend, collection.documents, settings.context_docs))
        if settings.mode == "feedback":
            providers.append(FeedbackProvider(backend, collection.documents))
        if not providers:
            return None

        def provide(examples: Sequence[Example]) -> list[Example]:
            out = list(examples)
            for provider in providers:
                out = provider(out)
            return out

        return provide

    def action(self, text: str, example: Example, settings: PromptSettings) -> Action:
        if settings.mode == "feedback":
            feedback = _feedback(example)
            # A text that names no menu term leaves RM3 unedited (parsing accepted it, so no penalty either).
            return WeightedQuery.of(feedback.weights(*feedback.edit(text)))
        if settings.mode == "select-rm3":
            selection = _selection(example)
            # Numbers outside the list (or none) leave RM3 unedited, as an answer outside the menu does.
            return WeightedQuery.of(selection.weights(selection.choice(text)))
        if settings.mode == "expand-rm3":
            return RM3Query(compose_query(settings.mode, example.question, text, repeats=settings.expand_repeats))
        return compose_query(settings.mode, example.question, text, repeats=settings.expand_repeats)

    def demonstration(self, example: Example, settings: PromptSettings) -> str | None:
        """select-rm3: the numbers of the shown results the judgments call relevant (none of them: ``none``,
        plain RM3; never the empty answer, which training penalises). Other modes have no answer the judgments
        determine."""
        from ..feedback import NONE_ANSWER

        if settings.mode != "select-rm3":
            return None
        docs = _selection(example).docs
        return " ".join(str(i) for i, d in enumerate(docs, 1) if example.targets.get(d.doc_id, 0) > 0) or NONE_ANSWER

    def fallback(self, example: Example, settings: PromptSettings) -> Action | None:
        """What evaluation runs for an answer with nothing to search: in the feedback-anchored modes the unedited
        RM3 query; in the text modes None (their empty composition: nothing in rewrite, the user's query in
        expand). Training scores such an answer as empty in every mode (measured in expand-rm3: with RM3's
        reward for it, a policy collapsed to empty answers, i.e. to plain RM3, within ten steps)."""
        if settings.mode == "expand-rm3":
            return RM3Query(example.question)
        if settings.mode == "select-rm3":
            return WeightedQuery.of(_selection(example).weights())
        return WeightedQuery.of(_feedback(example).weights()) if settings.mode == "feedback" else None

    def searchable(self, text: str, backend: TextSearcher, settings: PromptSettings | None = None) -> bool:
        """Whether the backend can search ``text``; in select-rm3 mode, whether it names a result by number
        (one outside the list still runs RM3 unedited) or answers ``none`` (no result is relevant: plain RM3)."""
        if settings is not None and settings.mode == "select-rm3":
            from ..feedback import NUMBER, says_none

            return NUMBER.search(text) is not None or says_none(text)
        return has_terms(backend, text)

    def query_action(self, text: str, example: Example) -> Action:
        return text

    def execute(self, actions: Sequence[Action], backend: TextSearcher, k: int) -> list[Outcome]:
        """One batched search for the text queries and one for the weighted ones (RM3 queries first become
        weighted ones after one batched first pass), outcomes in input order."""
        from ..feedback import rm3_queries

        actions = list(actions)
        rm3 = [i for i, a in enumerate(actions) if isinstance(a, RM3Query)]
        if rm3:
            texts = [actions[i].text for i in rm3]  # type: ignore[union-attr]
            for i, weights in zip(rm3, rm3_queries(backend, texts), strict=True):
                actions[i] = WeightedQuery.of(weights)
        rankings: list[Ranking] = [Ranking() for _ in actions]
        text = [i for i, a in enumerate(actions) if isinstance(a, str)]
        weighted = [i for i, a in enumerate(actions) if isinstance(a, WeightedQuery)]
        if len(text) + len(weighted) != len(actions):
            raise TypeError("retrieval actions are query strings, WeightedQuery or RM3Query objects")
        if text:
            for i, ranking in zip(text, backend.search([actions[i] for i in text], k), strict=True):
                rankings[i] = ranking
        if weighted:
            queries = [dict(actions[i].terms) for i in weighted]  # type: ignore[union-attr]
            for i, ranking in zip(weighted, backend.search_weighted(queries, k), strict=True):
                rankings[i] = ranking
        return [Outcome(r) for r in rankings]

    def baselines(self) -> Mapping[str, Callable[..., Any]]:
        return {"prf": lambda task, backend, prf=None, **_: PRFPolicy(backend, prf)}


# -- the family's baseline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PRFSettings:
    """RM3 pseudo-relevance feedback (Lavrenko & Croft's relevance model, interpolated as in Anserini)."""

    fb_docs: int = 10
    fb_terms: int = 10
    original_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.fb_docs < 1 or self.fb_terms < 1:
            raise DeepRetrievalError(
                f"PRF needs at least 1 feedback document and term, got {self.fb_docs}, {self.fb_terms}"
            )
        if not 0 <= self.original_weight <= 1:
            raise DeepRetrievalError(f"PRF's original-query weight must be in [0, 1], got {self.original_weight}")


class PRFPolicy:
    """RM3: a first BM25 pass, a relevance model from the top documents, an interpolated weighted query.

    See ``feedback`` for the relevance model; the feedback-anchored query mode starts from this query.
    """

    name = "prf"

    def __init__(self, searcher: TextSearcher, settings: PRFSettings | None = None) -> None:
        self.searcher = searcher
        self.settings = settings or PRFSettings()

    def describe(self) -> dict[str, object]:
        return {"policy": self.name, **asdict(self.settings)}

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]:
        from ..feedback import FeedbackSettings, rm3_queries

        s = self.settings
        settings = FeedbackSettings(s.fb_docs, s.fb_terms, s.original_weight)
        queries = rm3_queries(self.searcher, [e.question for e in examples], settings)
        actions = [WeightedQuery.of(weights) for weights in queries]
        return [PolicyOutput(query=str(action), action=action) for action in actions]


def _selection(example: Example):
    selection = example.meta.get("selection")
    if selection is None:
        raise DeepRetrievalError(
            f"select-rm3 mode: example {example.id!r} has no feedback documents (no context provider)"
        )
    return selection


def _feedback(example: Example):
    feedback = example.meta.get("feedback")
    if feedback is None:
        raise DeepRetrievalError(f"feedback mode: example {example.id!r} has no feedback menu (no context provider)")
    return feedback
