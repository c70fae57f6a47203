"""The titles part of a prompt's context: the top first-pass results of the user's query, shown to the policy.

(*Context* is everything a prompt shows beside the information need, drawn from a first pass of the user's
query: these titles, the feedback mode's RM3 menu, select-rm3's numbered results; see ``prompts.Context``.)
With ``context_docs = n`` the prompt lists the titles (or opening words) of the n best BM25 hits for the
original query, so the policy can pick vocabulary the collection really uses — pseudo-relevance feedback
with a language model choosing the terms (cf. corpus-steered query expansion) — instead of having to
know it. Training and evaluation attach the same titles, so a trained run is evaluated as it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .search.base import TextSearcher
from .types import Document, Example

MAX_CHARS = 160


class TitleProvider:
    """Adds ``meta['titles']`` (the top ``n_docs`` first-pass titles) to examples: one batched search per call."""

    def __init__(self, searcher: TextSearcher, documents: Sequence[Document], n_docs: int) -> None:
        self.searcher = searcher
        self.n_docs = n_docs
        self._text = {d.id: snippet(d) for d in documents}

    def __call__(self, examples: Sequence[Example]) -> list[Example]:
        if self.n_docs <= 0:
            return list(examples)
        hits = self.searcher.search([e.question for e in examples], self.n_docs)
        return [
            replace(e, meta={**e.meta, "titles": [self._text[h.doc_id] for h in hs]})
            for e, hs in zip(examples, hits, strict=True)
        ]


def snippet(document: Document) -> str:
    text = document.title.strip() or document.text.strip()
    text = " ".join(text.split())
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1].rsplit(" ", 1)[0] + "…"
