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
from ..feedback import FeedbackSettings
from ..modes import compose_query
from ..prompts import PromptSettings
from ..rewards import PRESETS
from ..search import folders
from ..search.base import TextSearcher, has_terms
from ..search.remote import remote_backend
from ..search.specs import BM25Spec, DenseSpec, HybridSpec, LuceneSpec, RemoteSpec, register, validate
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


def bm25_settings(spec: Mapping[str, Any] | BM25Spec):
    """BM25Settings from a recipe's ``backend:`` section (``kind: bm25``, the default) or its typed spec;
    errors name the field."""
    from ..search.bm25 import BM25Settings

    if not isinstance(spec, BM25Spec):
        spec = validate(BM25Spec, spec)
    return BM25Settings(**spec.fields())


def bm25_backend(collection: Collection, spec: BM25Spec, index: Path | None):
    """The BM25 index at ``index`` (checked against the corpus and the settings given), or built and saved
    there. ``spec`` given nothing: whatever an existing index was built with (the defaults for a new one).

    Without ``index`` the index is cached under ``search.folders.index_cache_dir()``, keyed by the corpus
    and the settings, so that repeated commands and runs on one collection index it once.
    """
    from ..search.bm25 import BM25Searcher
    from ..search.folders import MANIFEST, corpus_hash

    settings = bm25_settings(spec) if spec.model_fields_set else None
    sha = corpus_hash(collection.documents)
    if index is None:
        settings = settings or bm25_settings(spec)
        key = hashlib.sha256(json.dumps([sha, asdict(settings)], sort_keys=True).encode()).hexdigest()[:24]
        index = folders.index_cache_dir() / key
    if (index / MANIFEST).exists():
        return BM25Searcher.load(index, expected_corpus_hash=sha, settings=settings)
    searcher = BM25Searcher.build(collection.documents, settings or bm25_settings(spec))
    searcher.save(index)
    return searcher


def dense_backend(collection: Collection, spec: DenseSpec, index: Path | None):
    """The dense index at ``index`` (checked against the corpus, the build settings given and the model), or
    encoded and saved there; ``spec`` given no field: whatever an existing index was built with. Cached
    under ``search.folders.index_cache_dir()`` like BM25's, keyed by the corpus and the build settings
    (search-time settings such as ``nprobe`` reuse it). Encoding progress is kept in shards beside the
    folder, so an interrupted build resumes; they are removed once the index is saved."""
    from ..errors import StaleIndexError
    from ..search.dense import DenseSearcher, DenseSettings, clear_shards
    from ..search.folders import MANIFEST, corpus_hash

    settings = DenseSettings(**spec.fields()) if spec.given() else None
    sha = corpus_hash(collection.documents)
    cached = index is None
    if index is None:
        settings = settings or DenseSettings(**spec.fields())
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
    settings = settings or DenseSettings(**spec.fields())
    searcher = DenseSearcher.build(collection.documents, settings, shards=shards, show_progress=True)
    searcher.save(index)
    clear_shards(shards)
    return searcher


def hybrid_backend(collection: Collection, spec: HybridSpec, index: Path | None):
    """RRF of the BM25 and the dense backend. Each part is the index its own kind would open (cached alike,
    so a hybrid run reuses a BM25 run's index); ``index`` holds them as ``bm25/`` and ``dense/``."""
    from ..search.dense import DenseSettings
    from ..search.hybrid import HybridSearcher, HybridSettings

    lexical, dense, fusion = spec.parts()
    bm25_settings(lexical)  # both parts checked now, not after the dense one is built
    DenseSettings(**dense.fields())
    if index is not None and index.exists():
        names = {p.name for p in index.iterdir()} if index.is_dir() else {""}
        if names and not names & {"bm25", "dense"}:
            raise DeepRetrievalError(
                f"{index} exists and is not a hybrid index (no bm25/ or dense/ inside); choose another folder"
            )
    return HybridSearcher(
        bm25_backend(collection, lexical, None if index is None else index / "bm25"),
        dense_backend(collection, dense, None if index is None else index / "dense"),
        HybridSettings(**fusion),
    )


def lucene_backend(collection: Collection, spec: LuceneSpec, index: Path | None):
    """Anserini's Lucene index (``search.lucene``, the optional Pyserini extra)."""
    from ..search import lucene

    return lucene.lucene_backend(collection, spec, index)


class RetrievalTask(Task):
    name = "retrieval"
    presets = PRESETS
    measures = ("ndcg@10", "recall@10", "recall@100", "recall@1000", "mrr@10")
    modes = ("rewrite", "expand", "expand-rm3", "select-rm3", "feedback")
    fallback_name = "prf"
    default_reward = "recall-lenient"  # the best measured on 2 CPU cores (docs/BENCHMARKS.md)
    backend_flags = ("k1", "b", "method", "stemmer", "stopwords")  # BM25's, as `deepretrieval index` takes them
    default_backend = "bm25"  # kinds: bm25, dense, hybrid, lucene, remote (registered below)

    def open_backend(self, index: Path, spec: Mapping[str, Any]):
        """A BM25 or dense index folder, opened without its collection (not checked against a corpus)."""
        typed = self.backend_spec(spec)
        if typed.kind == "bm25":
            from ..search.bm25 import BM25Searcher

            return BM25Searcher.load(index, settings=bm25_settings(typed) if typed.given() else None)
        if typed.kind == "dense":
            from ..search.dense import DenseSearcher, DenseSettings

            return DenseSearcher.load(index, settings=DenseSettings(**typed.fields()) if typed.given() else None)
        raise DeepRetrievalError(f"a {typed.kind} backend is opened from its collection: give --data")

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

    def demonstration(
        self, example: Example, settings: PromptSettings, collection: Collection | None = None
    ) -> str | None:
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

    def to_verl_row(self, example: Example, settings: PromptSettings) -> dict[str, Any]:
        """The base row; refused in the modes whose actions edit a first-pass menu (``feedback``, ``select-rm3``):
        the menu is an object of the exporting process, which verl's reward process does not have."""
        if settings.mode in ("feedback", "select-rm3"):
            raise DeepRetrievalError(
                f"verl export: the {settings.mode} mode's actions edit a first-pass menu the reward process cannot "
                "rebuild from a row; export a rewrite, expand or expand-rm3 recipe"
            )
        return super().to_verl_row(example, settings)

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


class PRFPolicy:
    """RM3: a first BM25 pass, a relevance model from the top documents, an interpolated weighted query.

    See ``feedback`` for the relevance model; the feedback-anchored query mode starts from this query.
    """

    name = "prf"

    def __init__(self, searcher: TextSearcher, settings: FeedbackSettings | None = None) -> None:
        self.searcher = searcher
        self.settings = settings or FeedbackSettings()

    def describe(self) -> dict[str, object]:
        s = self.settings  # RM3's own settings (a menu's size is no part of it)
        return {"policy": self.name, "fb_docs": s.fb_docs, "fb_terms": s.fb_terms, "original_weight": s.original_weight}

    def generate(self, examples: Sequence[Example]) -> list[PolicyOutput]:
        from ..feedback import rm3_queries

        queries = rm3_queries(self.searcher, [e.question for e in examples], self.settings)
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


register(BM25Spec, bm25_backend, family="retrieval")
register(DenseSpec, dense_backend, family="retrieval")
register(HybridSpec, hybrid_backend, family="retrieval")
register(LuceneSpec, lucene_backend, family="retrieval")
register(RemoteSpec, remote_backend, family="retrieval")  # a text backend served by `deepretrieval serve search`
