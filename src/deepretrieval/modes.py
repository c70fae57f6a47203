"""Query modes: how a model's text becomes the query that is run.

- ``rewrite``: the model's query replaces the user's.
- ``expand``: the model's text is appended to the user's query (as Query2doc does). The user's query may
  be repeated ``repeats`` times first, so that BM25 keeps weighting its terms above the generated ones.
- ``expand-rm3``: as ``expand``, then RM3 pseudo-relevance feedback runs on the expanded query (its first
  pass finds the feedback documents, its terms are the relevance model's original query): the model's
  expansion steers which documents feed back.
- ``select-rm3``: the model names which of the top first-pass results are relevant (or answers ``none``:
  plain RM3), and RM3 feeds back those only (see ``feedback``): relevance feedback with the model as the
  judge; not a text composition.
- ``feedback``: the model edits the RM3 pseudo-relevance-feedback query, choosing terms from a menu (see
  ``feedback``); not a text composition, so ``compose_query`` does not apply.

In every mode an answer with nothing to search (empty, ``!!!``, only stopwords) is an empty answer: training
gives it the empty-answer penalty (the format penalty where the preset requires the format); evaluation runs
the mode's fallback for it (rewrite: nothing; expand: the user's query; the RM3 modes: plain RM3).
"""

from __future__ import annotations

MODES = ("rewrite", "expand", "expand-rm3", "select-rm3", "feedback")


def compose_query(mode: str, question: str, generated: str | None, *, repeats: int = 1) -> str:
    """The text sent to the backend. ``generated`` may be None or empty (nothing usable was produced)."""
    generated = (generated or "").strip()
    if mode == "rewrite":
        return generated
    if mode in ("expand", "expand-rm3"):
        base = " ".join([question.strip()] * max(repeats, 1))
        return f"{base} {generated}".strip()
    raise ValueError(f"query mode {mode!r} does not compose text (text modes: rewrite, expand, expand-rm3)")
