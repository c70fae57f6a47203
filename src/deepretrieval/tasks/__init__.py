"""Task families, one module each (see ``base.Task``); a recipe or ``--task`` names one."""

from __future__ import annotations

from importlib import import_module

from ..errors import DeepRetrievalError
from .base import Outcome, Proposal, Task, TaskReward, propose, propose_output, render_prompts

__all__ = [
    "DEFAULT_TASK",
    "TASKS",
    "default_task",
    "Outcome",
    "Proposal",
    "Task",
    "TaskReward",
    "get_task",
    "propose",
    "propose_output",
    "render_prompts",
]

# name -> (module, class): imported on first use, so naming a family costs nothing until it is used.
TASKS = {
    "retrieval": ("retrieval", "RetrievalTask"),
    "literature": ("literature", "LiteratureTask"),
    "qa": ("qa", "QATask"),
    "sql": ("sql", "SQLTask"),
}


DEFAULT_TASK = "retrieval"


def default_task() -> Task:
    """The family used where none is named (a plain ``eval``, a baseline built without one)."""
    return get_task(DEFAULT_TASK)


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise DeepRetrievalError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    module, cls = TASKS[name]
    return getattr(import_module(f".{module}", __name__), cls)()
