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
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from .types import Document, Example

WORD = re.compile(r"-?[^\W_][\w'-]*")


@dataclass(frozen=True)
class FeedbackSettings:
    fb_docs: int = 10
    fb_terms: int = 10
    original_weight: float = 0.5
    menu_terms: int = 30


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


def relevance_model(searcher, hits: Sequence) -> Counter[str]:
    """Term weights of the feedback documents' relevance model (unnormalised)."""
    total_score = sum(h.score for h in hits) or 1.0
    model: Counter[str] = Counter()
    for hit in hits:
        tf = searcher.doc_term_counts(hit.doc_id)
        length = sum(tf.values()) or 1
        doc_weight = hit.score / total_score
        for term, count in tf.items():
            model[term] += doc_weight * count / length
    return model


def l1(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {t: w / total for t, w in weights.items()} if total else {}


def feedback_for(searcher, question: str, hits: Sequence, settings: FeedbackSettings, words=None) -> Feedback:
    """The RM3 starting point and menu for one need. ``words``: stem -> surface word (else the stems)."""
    original = tuple(sorted(l1(Counter(searcher.analyze(question))).items()))
    model = relevance_model(searcher, hits) if hits else Counter()
    top = model.most_common(max(settings.menu_terms, settings.fb_terms))
    norm = sum(w for _, w in top[: settings.fb_terms]) or 1.0
    menu = tuple(MenuTerm(t, (words or {}).get(t, t), w / norm) for t, w in top)
    return Feedback(original, menu, settings.fb_terms, settings.original_weight)


def rm3_queries(searcher, texts: Sequence[str], settings: FeedbackSettings | None = None) -> list[dict[str, float]]:
    """RM3's weighted query for each text: one batched first pass, then the relevance model of its top
    ``fb_docs`` documents mixed with the text's own terms (no menu beyond RM3's ``fb_terms``)."""
    settings = replace(settings or FeedbackSettings(), menu_terms=(settings or FeedbackSettings()).fb_terms)
    first_pass = searcher.search(list(texts), settings.fb_docs)
    return [feedback_for(searcher, t, hits, settings).weights() for t, hits in zip(texts, first_pass, strict=True)]


def surface_words(searcher, documents: Sequence[Document]) -> dict[str, str]:
    """stem -> the commonest word in ``documents`` that the index analyses to it."""
    counts: Counter[str] = Counter()
    for document in documents:
        counts.update(w.lower() for w in WORD.findall(document.contents) if not w.startswith("-"))
    words = list(counts)
    best: dict[str, tuple[int, str]] = {}
    for word, stems in zip(words, searcher._analyze_many(words), strict=True):
        for stem in stems:
            if stem not in best or counts[word] > best[stem][0]:
                best[stem] = (counts[word], word)
    return {stem: word for stem, (_, word) in best.items()}


class FeedbackProvider:
    """Adds ``meta['feedback']`` (a :class:`Feedback`) to examples: one batched first pass per call."""

    def __init__(self, searcher, documents: Sequence[Document], settings: FeedbackSettings | None = None) -> None:
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
