"""Policies: who writes the query — baselines, local models, OpenAI-compatible endpoints."""

from __future__ import annotations

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


def make_policy(
    spec: str,
    *,
    searcher: BM25Searcher,
    prf: PRFSettings | None = None,
    prompt=None,
    batch_size: int = 16,
    documents=None,
) -> Policy:
    """Resolve a policy spec.

    ``original`` | ``prf`` | ``oracle`` | ``openai:<model>@<base url>`` | a training run folder | a model
    registry name (``smollm2-135m``, ``tiny-random``) | a local HF folder. ``prompt`` (PromptSettings)
    overrides what a trained run saved in its policy.json.
    """
    if spec == "original":
        return OriginalPolicy()
    if spec == "prf":
        return PRFPolicy(searcher, prf)
    if spec == "oracle":
        return OraclePolicy()
    from .llm import HFPolicy, OpenAIPolicy, parse_openai_spec

    if spec.startswith("openai:"):
        model, url = parse_openai_spec(spec)
        return OpenAIPolicy(model, url, prompt=prompt)
    policy = HFPolicy(spec, prompt=prompt, batch_size=batch_size, context=_context(searcher, documents, prompt, spec))
    return policy


def _context(searcher, documents, prompt, spec):
    """A context provider sized as the policy was trained (policy.json) or as ``prompt`` asks."""
    from .llm import read_policy_settings, resolve_run_dir

    if prompt is not None:
        n = prompt.context_docs
    else:
        from pathlib import Path

        ref = Path(resolve_run_dir(spec))
        n = int(read_policy_settings(ref).get("context_docs", 0)) if ref.is_dir() else 0
    if not n or documents is None:
        return None
    from ..context import ContextProvider

    return ContextProvider(searcher, documents, n)
