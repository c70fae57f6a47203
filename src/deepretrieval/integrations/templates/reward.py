"""verl's reward for this export: deepretrieval's task scores each completion (written by `deepretrieval export
verl`; the logic is ``deepretrieval.integrations.verl``).

verl 0.9: ``reward.custom_reward_function.path=<this file> reward.custom_reward_function.name=compute_score``
(older verl: ``custom_reward_function.path`` / ``.name``; with ``reward_model.reward_manager=batch``:
``name=compute_score_batch``, the whole batch in one backend call). The task, reward preset and backend are
those of ``recipe.yaml`` beside this file; ``DEEPRETRIEVAL_BACKEND_URL=http://host:8000`` sends the searches to
``deepretrieval serve search`` instead (``DEEPRETRIEVAL_BACKEND``: a whole ``backend:`` mapping, as YAML). A search
that fails raises ``SearchFailure``: verl stops rather than train on a reward no search gave.
"""

from pathlib import Path

from deepretrieval.integrations import verl as _verl

RECIPE = Path(__file__).resolve().with_name("recipe.yaml")


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **_):
    """``{"score": reward, "metric": the preset's metric, "format_ok": 1 or 0}`` for one completion (calls made at
    once from verl's reward threads are scored together, in one backend call)."""
    return _verl.score_one(RECIPE, solution_str, ground_truth, extra_info)


def compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos=None, **_):
    """The same for a batch (verl's batch reward manager), executed with one backend call."""
    return _verl.score_many(RECIPE, solution_strs, ground_truths, extra_infos)
