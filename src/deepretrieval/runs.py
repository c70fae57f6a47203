"""What training and evaluation both write into their folders: files replaced atomically (a kill leaves the
old or the new one, whole), and the saved policy folder (a normal HF folder plus ``policy.json``) that
training's final policy and the warm start both are."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .recipe import TrainRecipe

POLICY_FILE = "policy.json"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, moved over it once written: a kill never leaves ``path`` half-written.

    The name keeps ``path``'s suffix (matplotlib picks the format from it) and carries the pid, so two
    processes never share one.
    """
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)  # the rename itself survives a power cut
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_policy(model: Any, tokenizer: Any, final_dir: Path, recipe: TrainRecipe) -> Path:
    """Save a normal HF folder (LoRA merged) plus policy.json, which tells eval how to prompt it."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    final_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(final_dir)
    tokenizer.save_pretrained(final_dir)
    policy = {
        **asdict(recipe.prompt_settings()),
        "task": recipe.task,
        "backend": recipe.backend,
        "base_model": recipe.model,
        "data": recipe.data,
    }
    (final_dir / POLICY_FILE).write_text(json.dumps(policy, indent=2))
    return final_dir
