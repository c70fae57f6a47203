"""Pseudo-relevance feedback as a query's starting point: RM3, and the menu a feedback-anchored policy edits.

RM3 (Lavrenko & Croft's relevance model, interpolated as in Anserini): a first BM25 pass; feedback
documents weighted by their first-pass score (normalised to sum to one), each document's terms by their
within-document frequency (L1-normalised); the ``fb_terms`` heaviest terms, L1-normalised, are mixed with
the L1-normalised original query at ``original_weight``.

The ``feedback`` query mode starts from that RM3 query: the prompt shows the user's query and a *menu* —
the ``menu_terms`` heaviest relevance-model terms (as words the documents use, not stems) — and the
policy answers with the menu terms to add (``-word`` drops an expansion term). An added term enters at its
relevance-model weight, on the same scale as RM3's own expansion terms; a dropped one loses its expansion
weight (the user's own terms keep theirs). An answer that names no menu term executes the unedited RM3
query: no bonus and no free pass.

The ``select-rm3`` mode anchors on the feedback *documents* instead: the prompt lists the top
``fb_docs`` first-pass results (numbered titles) and the policy answers with the numbers of those it judges
relevant; RM3 then builds its relevance model from those documents only (at their first-pass weights),
which is relevance feedback with the model as the judge. Naming every document, or answering ``none`` (no
result is relevant), is plain RM3; an answer that names nothing (empty, ``!!!``) is an empty answer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from .search.base import TextSearcher
from .types import Document, Example, Hit

WORD = re.compile(r"-?[^\W_][\w'-]*")


@dataclass(frozen=True)
class FeedbackSettings:
    """RM3 pseudo-relevance feedback (Lavrenko & Croft's relevance model, interpolated as in Anserini): the
    ``prf`` baseline's settings, and the feedback modes' (``menu_terms``: the terms a menu offers)."""

    fb_docs: int = 10
    fb_terms: int = 10
    original_weight: float = 0.5
    menu_terms: int = 30

    def __post_init__(self) -> None:
        from .errors import DeepRetrievalError

        if self.fb_docs < 1 or self.fb_terms < 1:
            raise DeepRetrievalError(
                f"PRF needs at least 1 feedback document and term, got {self.fb_docs}, {self.fb_terms}"
            )
        if not 0 <= self.original_weight <= 1:
            raise DeepRetrievalError(f"PRF's original-query weight must be in [0, 1], got {self.original_weight}")


@dataclass(frozen=True)
class MenuTerm:
    stem: str  # the index's analysed term
    word: str  # the commonest surface form in the feedback documents, as shown to the policy
    weight: float  # relevance-model weight, normalised over RM3's own expansion terms


@dataclass(frozen=True)
class Feedback:
    """One need's RM3 query and the menu of candidate terms a policy may add to it."""

    original: tuple[tuple[str, float], ...]  # the user's analysed terms, L1-normalised
    menu: tuple[MenuTerm, ...]  # heaviest first; the first ``fb_terms`` are RM3's expansion
    fb_terms: int
    original_weight: float

    def weights(self, added: frozenset[str] = frozenset(), dropped: frozenset[str] = frozenset()) -> dict[str, float]:
        """RM3's weights, with menu terms (stems) added at their relevance-model weight and expansion terms
        dropped."""
        chosen = {t.stem for t in self.menu[: self.fb_terms]} - dropped | (added & {t.stem for t in self.menu})
        scale = 1 - self.original_weight
        mixed = {term: self.original_weight * w for term, w in self.original}
        for term in self.menu:
            if term.stem in chosen:
                mixed[term.stem] = mixed.get(term.stem, 0.0) + scale * term.weight
        return mixed

    def edit(self, text: str) -> tuple[frozenset[str], frozenset[str]]:
        """The menu stems an answer adds and the expansion stems it drops (``-word``): a word counts when it
        is a menu word as shown (or its stem), case aside; other words are ignored, so an answer outside the
        menu leaves RM3 unedited."""
        by_name = {t.word.lower(): t.stem for t in self.menu} | {t.stem: t.stem for t in self.menu}
        added: set[str] = set()
        dropped: set[str] = set()
        for token in WORD.findall(text.lower()):
            stem = by_name.get(token.lstrip("-"))
            if stem is not None:
                (dropped if token.startswith("-") else added).add(stem)
        return frozenset(added - dropped), frozenset(dropped)


def relevance_model(searcher: TextSearcher, hits: Sequence[Hit]) -> Counter[str]:
    """Term weights of the feedback documents' relevance model (unnormalised)."""
    return mixed_model([(h.score, searcher.doc_term_counts(h.doc_id)) for h in hits])


def mixed_model(documents: Sequence[tuple[float, Mapping[str, int]]]) -> Counter[str]:
    """The relevance model of (first-pass score, term counts) pairs: each document's L1-normalised term
    frequencies, weighted by its score normalised over the documents given."""
    total_score = sum(score for score, _ in documents) or 1.0
    model: Counter[str] = Counter()
    for score, tf in documents:
        length = sum(tf.values()) or 1
        doc_weight = score / total_score
        for term, count in tf.items():
            model[term] += doc_weight * count / length
    return model


def l1(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {t: w / total for t, w in weights.items()} if total else {}


def feedback_for(
    searcher: TextSearcher, question: str, hits: Sequence[Hit], settings: FeedbackSettings, words=None
) -> Feedback:
    """The RM3 starting point and menu for one need. ``words``: stem -> surface word (else the stems)."""
    return _feedback(original_terms(searcher, question), relevance_model(searcher, hits), settings, words)


def original_terms(searcher: TextSearcher, question: str) -> tuple[tuple[str, float], ...]:
    """The user's analysed terms, L1-normalised: the original part of an RM3 query."""
    return tuple(sorted(l1(Counter(searcher.analyze(question))).items()))


def _feedback(original, model: Counter[str], settings: FeedbackSettings, words=None) -> Feedback:
    top = model.most_common(max(settings.menu_terms, settings.fb_terms))
    norm = sum(w for _, w in top[: settings.fb_terms]) or 1.0
    menu = tuple(MenuTerm(t, (words or {}).get(t, t), w / norm) for t, w in top)
    return Feedback(original, menu, settings.fb_terms, settings.original_weight)


def rm3_queries(
    searcher: TextSearcher, texts: Sequence[str], settings: FeedbackSettings | None = None
) -> list[dict[str, float]]:
    """RM3's weighted query for each text: one batched first pass, then the relevance model of its top
    ``fb_docs`` documents mixed with the text's own terms (no menu beyond RM3's ``fb_terms``)."""
    settings = replace(settings or FeedbackSettings(), menu_terms=(settings or FeedbackSettings()).fb_terms)
    first_pass = searcher.search(list(texts), settings.fb_docs)
    return [feedback_for(searcher, t, hits, settings).weights() for t, hits in zip(texts, first_pass, strict=True)]


def surface_words(searcher: TextSearcher, documents: Sequence[Document]) -> dict[str, str]:
    """stem -> the commonest word in ``documents`` that the index analyses to it."""
    counts: Counter[str] = Counter()
    for document in documents:
        counts.update(w.lower() for w in WORD.findall(document.contents) if not w.startswith("-"))
    words = list(counts)
    best: dict[str, tuple[int, str]] = {}
    for word, stems in zip(words, searcher.analyze_many(words), strict=True):
        for stem in stems:
            if stem not in best or counts[word] > best[stem][0]:
                best[stem] = (counts[word], word)
    return {stem: word for stem, (_, word) in best.items()}


class FeedbackProvider:
    """Adds ``meta['feedback']`` (a :class:`Feedback`) to examples: one batched first pass per call."""

    def __init__(
        self, searcher: TextSearcher, documents: Sequence[Document], settings: FeedbackSettings | None = None
    ) -> None:
        self.searcher = searcher
        self.settings = settings or FeedbackSettings()
        self._documents = {d.id: d for d in documents}

    def __call__(self, examples: Sequence[Example]) -> list[Example]:
        depth = self.settings.fb_docs
        first_pass = self.searcher.search([e.question for e in examples], depth)
        out = []
        for example, hits in zip(examples, first_pass, strict=True):
            words = surface_words(self.searcher, [self._documents[h.doc_id] for h in hits])
            feedback = feedback_for(self.searcher, example.question, hits, self.settings, words)
            out.append(replace(example, meta={**example.meta, "feedback": feedback}))
        return out


@dataclass(frozen=True)
class FeedbackDoc:
    """One first-pass result a ``select-rm3`` policy may feed back: what its prompt shows and what RM3 needs."""

    doc_id: str
    score: float  # first-pass BM25 score
    counts: tuple[tuple[str, int], ...]  # the index's term counts for the document
    snippet: str  # as shown in the prompt


NUMBER = re.compile(r"(?<![\w.])(\d{1,3})(?![\w.])")
# select-rm3's answer when no shown result is relevant: a deliberate answer (plain RM3, scored on its merits),
# unlike an empty one, which names nothing and is penalised in training.
NONE_ANSWER = "none"
_NONE = re.compile(rf"\W*{NONE_ANSWER}\b", re.IGNORECASE)


def says_none(text: str) -> bool:
    """Whether a select-rm3 answer says that no result is relevant: it starts with ``none`` and names no number."""
    return _NONE.match(text) is not None and NUMBER.search(text) is None


@dataclass(frozen=True)
class Selection:
    """One need's top first-pass results; the policy picks which of them feed RM3's relevance model."""

    original: tuple[tuple[str, float], ...]  # the user's analysed terms, L1-normalised
    docs: tuple[FeedbackDoc, ...]  # first-pass order; shown numbered from 1
    settings: FeedbackSettings

    def choice(self, text: str) -> tuple[int, ...]:
        """The 0-based positions of the results an answer names by number (1..n); other text is ignored."""
        picked = {int(n) - 1 for n in NUMBER.findall(text)}
        return tuple(sorted(i for i in picked if 0 <= i < len(self.docs)))

    def weights(self, chosen: Sequence[int] | None = None) -> dict[str, float]:
        """RM3's weighted query with the relevance model of the ``chosen`` results only (None or empty: all of
        them, i.e. plain RM3)."""
        docs = [self.docs[i] for i in chosen] if chosen else self.docs
        model = mixed_model([(d.score, dict(d.counts)) for d in docs])
        settings = replace(self.settings, menu_terms=self.settings.fb_terms)
        return _feedback(self.original, model, settings).weights()


class SelectionProvider:
    """Adds ``meta['selection']`` (a :class:`Selection`) to examples: one batched first pass per call."""

    def __init__(
        self, searcher: TextSearcher, documents: Sequence[Document], settings: FeedbackSettings | None = None
    ) -> None:
        from .titles import snippet

        self.searcher = searcher
        self.settings = settings or FeedbackSettings()
        self._snippets = {d.id: snippet(d) for d in documents}

    def __call__(self, examples: Sequence[Example]) -> list[Example]:
        first_pass = self.searcher.search([e.question for e in examples], self.settings.fb_docs)
        out = []
        for example, hits in zip(examples, first_pass, strict=True):
            docs = tuple(
                FeedbackDoc(
                    h.doc_id,
                    h.score,
                    tuple(self.searcher.doc_term_counts(h.doc_id).items()),
                    self._snippets[h.doc_id],
                )
                for h in hits
            )
            selection = Selection(original_terms(self.searcher, example.question), docs, self.settings)
            out.append(replace(example, meta={**example.meta, "selection": selection}))
        return out
