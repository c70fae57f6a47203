"""Policies: who writes the query — baselines, local models, OpenAI-compatible endpoints."""

from __future__ import annotations

from ..errors import DeepRetrievalError
from ..search.bm25 import BM25Searcher
from .base import Policy, PolicyOutput
from .baselines import OraclePolicy, OriginalPolicy, PRFPolicy, PRFSettings

__all__ = [
    "Policy",
    "PolicyOutput",
    "OriginalPolicy",
    "PRFPolicy",
    "PRFSettings",
    "OraclePolicy",
    "make_policy",
]

BASELINES = ("original", "prf", "oracle")
KNOWN = "original, prf, oracle, openai:<model>@<url>, a training run or model folder, smollm2-135m, tiny-random"


def make_policy(
    spec: str,
    *,
    searcher: BM25Searcher,
    prf: PRFSettings | None = None,
    prompt: dict | None = None,
    batch_size: int = 16,
    documents=None,
) -> Policy:
    """Resolve a policy spec.

    ``original`` | ``prf`` | ``oracle`` | ``openai:<model>@<base url>`` | a training run folder | a model
    registry name (``smollm2-135m``, ``tiny-random``) | a local HF folder. ``prompt`` holds prompt settings
    given explicitly (command-line flags): each overrides only itself; the rest come from what a trained run
    saved in its policy.json, else from the defaults.
    """
    if not spec.strip():
        raise DeepRetrievalError(f"an empty policy name (known: {KNOWN})")
    if spec == "original":
        return OriginalPolicy()
    if spec == "prf":
        return PRFPolicy(searcher, prf)
    if spec == "oracle":
        return OraclePolicy()
    from .llm import HFPolicy, OpenAIPolicy, PromptSettings, parse_openai_spec, prompt_settings_for

    if spec.startswith("openai:"):
        model, url = parse_openai_spec(spec)
        settings = PromptSettings().replace(**(prompt or {}))
        return OpenAIPolicy(model, url, prompt=settings, context=_context(searcher, documents, settings))
    from ..models import check_model

    try:
        check_model(spec)
    except DeepRetrievalError as exc:
        raise DeepRetrievalError(f"unknown policy {spec!r} (known: {KNOWN}); {exc}") from None
    settings = prompt_settings_for(spec, prompt)
    return HFPolicy(spec, prompt=settings, batch_size=batch_size, context=_context(searcher, documents, settings))


def _context(searcher, documents, settings):
    """A context provider of the size the prompt settings ask for (None when they show no context)."""
    if not settings.context_docs or documents is None:
        return None
    from ..context import ContextProvider

    return ContextProvider(searcher, documents, settings.context_docs)
