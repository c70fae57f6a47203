"""The evidence-seeking QA family: DeepRetrieval's NQ / TriviaQA / SQuAD task. From a question the policy
writes a search query; it runs on BM25 over a passage corpus; the reward is a step table on the rank of the
first passage that contains an answer (DeepRetrieval: BM25 top 3,000, with a +1 / -4 format term).

Relevance is answer containment with DPR-style normalisation, computed once when the data is loaded
(``data.qa``): an example's ``targets`` are the passages holding an answer. So the reward needs only the
ranked ids, as every other family's does, and evaluation is pytrec_eval on those qrels.

The rank step table is a step table on the reciprocal rank (rank <= n  <=>  1/rank >= 1/n), so it is plain
``RewardConfig`` data on the ``mrr`` metric: no reward code of its own. Everything else is the retrieval
family's: the answer format, modes ``rewrite`` and ``expand`` (the question with the model's keywords
appended), the BM25 backend (``backend: {kind: bm25, k1, b, …}``), batched execution, the ``prf``
baseline. Only the prompt is the family's own.
"""

from __future__ import annotations

from typing import Any

from ..prompts import PromptSettings, answer_format
from ..rewards import RewardConfig
from ..types import Example
from .retrieval import RetrievalTask

# DeepRetrieval's answer term for evidence-seeking QA (SEED-FACTS.md): rank of the first passage holding an
# answer <= 5 -> +5, <= 20 -> +4, <= 50 -> +2, <= 100 -> +1, <= 1000 -> +0.5, <= 3000 -> +0.1, none -> -3.5.
# As thresholds on 1/rank: division is correctly rounded and monotone, so 1/r >= 1/n exactly when r <= n.
FIRST_HIT_TIERS: tuple[tuple[float, float], ...] = tuple(
    (1 / rank, reward) for rank, reward in ((5, 5.0), (20, 4.0), (50, 2.0), (100, 1.0), (1000, 0.5), (3000, 0.1))
)


def _deepretrieval(below: float) -> RewardConfig:
    # An empty answer scores as an invalid one (-4): DeepRetrieval's empty <answer></answer> scored better
    # than a valid query that found nothing (-3.5 + 1), and a policy learns to say nothing.
    return RewardConfig(
        metric="mrr",
        k=3000,
        tiers=FIRST_HIT_TIERS,
        below_tiers=below,
        format_bonus=1.0,
        format_penalty=-4.0,
        empty_penalty=-4.0,
    )


PRESETS: dict[str, RewardConfig] = {
    # The family's default: DeepRetrieval's NQ / TriviaQA reward.
    "deepretrieval-rank": _deepretrieval(-3.5),
    # DeepRetrieval's SQuAD variant: no answer in the top 3,000 costs -2.5 instead of -3.5.
    "deepretrieval-rank-squad": _deepretrieval(-2.5),
    # Reciprocal rank of the first answer passage in the top 100 (a dense signal, no step table).
    "mrr": RewardConfig(metric="mrr", k=100),
    # The same, with an out-of-format completion searched as it stands (small models on a CPU).
    "mrr-lenient": RewardConfig(metric="mrr", k=100, require_format=False),
}

# DeepRetrieval's evaluation: hit rate (trec_eval's success@k) @1/5/20/100 and MRR.
HIT_MEASURES = ("success@1", "success@5", "success@20", "success@100", "mrr@100")

_TASK = {
    "rewrite": (
        "You are a search expert. Write a keyword query that finds a passage answering the user's question in "
        "a collection of {domain}passages. Use the words such a passage would contain (technical terms, names, "
        "synonyms), not the question's phrasing."
    ),
    "expand": (
        "You are a search expert. The user's question will be searched in a collection of {domain}passages. "
        "Write extra keywords to add to it: the technical terms, names and synonyms a passage answering it "
        "would contain."
    ),
}
_SHORT_TASK = {
    "rewrite": "Write a keyword query that finds a {domain}passage answering the question.",
    "expand": "Add keywords a {domain}passage answering the question contains.",
}


class QATask(RetrievalTask):
    name = "qa"
    presets = PRESETS
    measures = HIT_MEASURES
    modes = ("rewrite", "expand")
    default_reward = "deepretrieval-rank"

    def messages(self, example: Example, settings: PromptSettings) -> list[dict[str, Any]]:
        short = settings.style == "short"
        domain = str(example.meta.get("domain", "")).strip()
        task = (_SHORT_TASK if short else _TASK)[settings.mode].format(domain=f"{domain} " if domain else "")
        system = task + " " + answer_format(settings.variant, settings.style, what="query")
        user = f"Question: {example.question.strip()}"
        titles = example.meta.get("titles")
        if titles:
            user += ("\nTop results:\n" if short else "\nTop search results for it:\n") + "\n".join(
                f"- {t}" for t in titles
            )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]
