"""Policies: who writes the query — baselines, local models, OpenAI-compatible endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DeepRetrievalError
from ..feedback import FeedbackSettings
from ..tasks.base import Task
from ..tasks.retrieval import PRFPolicy
from ..types import Collection
from .base import Policy, PolicyOutput
from .baselines import OraclePolicy, OriginalPolicy

__all__ = [
    "Policy",
    "PolicyOutput",
    "OriginalPolicy",
    "PRFPolicy",
    "FeedbackSettings",
    "OraclePolicy",
    "make_policy",
]


def known_policies(task: Task) -> str:
    names = ["original", *task.baselines(), "oracle"]
    return ", ".join(names) + ", openai:<model>@<url>, a training run or model folder, smollm2-135m, tiny-random"


def make_policy(
    spec: str,
    *,
    task: Task,
    backend: Any,
    collection: Collection | None = None,
    prf: FeedbackSettings | None = None,
    prompt: dict | None = None,
    batch_size: int = 16,
) -> Policy:
    """Resolve a policy spec for ``task``.

    ``original`` | ``oracle`` | a baseline of the task (retrieval: ``prf``) | ``openai:<model>@<base url>`` |
    a training run folder | a model registry name (``smollm2-135m``, ``tiny-random``) | a local HF folder.
    ``prompt`` holds prompt settings given explicitly (command-line flags): each overrides only itself; the
    rest come from what a trained run saved in its policy.json, else from the defaults. ``collection`` is
    where retrieved context for prompts comes from.
    """
    if not spec.strip():
        raise DeepRetrievalError(f"an empty policy name (known: {known_policies(task)})")
    if spec == "original":
        return OriginalPolicy(task)
    if spec == "oracle":
        return OraclePolicy(task)
    if spec in task.baselines():
        return task.baselines()[spec](task, backend, prf=prf)
    from .llm import HFPolicy, OpenAIPolicy, parse_openai_spec, prompt_settings_for

    if spec.startswith("openai:"):
        model, url = parse_openai_spec(spec)
        settings = task.default_prompt().replace(**(prompt or {}))
        context = _context(task, backend, collection, settings)
        return OpenAIPolicy(model, url, task=task, backend=backend, prompt=settings, context=context)
    from ..models import check_model, is_folder_name

    try:
        check_model(spec)
    except DeepRetrievalError as exc:
        if is_folder_name(spec) and not Path(spec).is_dir():  # a path to nothing: known names would not help
            raise DeepRetrievalError(f"policy {exc}") from None
        raise DeepRetrievalError(f"unknown policy {spec!r} (known: {known_policies(task)}); {exc}") from None
    settings = prompt_settings_for(spec, prompt, defaults=task.default_prompt())
    context = _context(task, backend, collection, settings)
    return HFPolicy(spec, task=task, backend=backend, prompt=settings, batch_size=batch_size, context=context)


def _context(task: Task, backend: Any, collection: Collection | None, settings):
    """The context provider the prompt settings ask for (None when they show none, or without a collection:
    the policy then says what is missing)."""
    if collection is None:
        return None
    return task.context(backend, collection, settings)
