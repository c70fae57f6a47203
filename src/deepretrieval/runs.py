"""Run folders: what training and evaluation write into them, and how a training run's folder is managed.

- files replaced atomically (a kill leaves the old or the new one, whole);
- the saved policy folder (a normal HF folder plus ``policy.json``, swapped in whole) that training's ``final``,
  ``best`` and ``last`` policies and the warm start all are (``selection`` says which step a run's is, and why);
- a training run's folder: a new run or a resume (``prepare_run``), its checkpoints (``last_checkpoint``,
  ``checkpoint_problem``), the recorded recipe, the log (``log_callback`` writes it, ``read_log`` reads it,
  ``family_stat`` finds the reward adapter's per-family values in it; every record carries ``minutes`` since the
  run started) and the TensorBoard events (``tensorboard_to``). ``train.py`` trains; it asks this module where
  and from what.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DeepRetrievalError

if TYPE_CHECKING:
    from .recipe import TrainRecipe

log = logging.getLogger(__name__)

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


def save_policy(
    model: Any,
    tokenizer: Any,
    final_dir: Path,
    recipe: TrainRecipe,
    selection: Mapping[str, Any] | None = None,
    state_dict: Mapping[str, Any] | None = None,
) -> Path:
    """Save a normal HF folder (LoRA merged) plus policy.json, which tells eval how to prompt it (and, for a
    training run's ``best``, ``final`` and ``last``, ``selection``: which step this is and why it was chosen).
    ``state_dict``: the whole model's weights where ``model`` holds a shard of them (FSDP, ZeRO-3).

    Written beside ``final_dir`` and swapped in (``replace_dir``): a kill leaves the old folder or the new one."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    policy = {
        **asdict(recipe.prompt_settings()),
        "task": recipe.task,
        "backend": recipe.backend,
        "base_model": recipe.model,
        "data": recipe.data,
    }
    if selection is not None:
        policy["selection"] = dict(selection)
    with replace_dir(final_dir) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        (tmp / POLICY_FILE).write_text(json.dumps(policy, indent=2))
    return final_dir


@contextmanager
def replace_dir(path: Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` that replaces it once written: the old one is renamed away, the new
    one renamed in, then the old one deleted (a kill between the two renames leaves ``.<name>.old-<pid>``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = (path.with_name(f".{path.name}.{label}-{os.getpid()}") for label in ("tmp", "old"))
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        _fsync(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def read_selection(folder: Path) -> dict[str, Any] | None:
    """The ``selection`` record of a saved policy's policy.json (None: no such folder or record)."""
    try:
        record = json.loads((folder / POLICY_FILE).read_text()).get("selection")
    except (OSError, ValueError, AttributeError):
        return None
    return record if isinstance(record, dict) else None


# --- A training run's folder: new runs, resumes, checkpoints, the log and TensorBoard events --------------

LOG_FILE = "train_log.jsonl"
RECIPE_FILE = "recipe.json"
CURVE_FILE = "learning_curve.png"
# Held-out selection's folders (``selection``): the best policy on the dev split so far, the dev evaluations'
# runs, and at the end the last step's policy beside ``final`` (the best).
BEST_DIR, DEV_DIR, LAST_DIR = "best", "dev", "last"
# One TensorBoard folder for all starts of a run: transformers' default is a new timestamped folder per start,
# which splits a resumed run into two TensorBoard runs that overlap after the checkpoint.
TENSORBOARD_DIR = Path("runs") / "train"
# Recipe fields a resume may change: a run may be continued further, and moved or copied to another folder.
RESUMABLE_CHANGES = ("max_steps", "output_dir")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")  # transformers' own pattern (trainer_utils._re_checkpoint)
# What transformers 5 (full model) or PEFT (adapter) write for the weights: one of them is needed ...
_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)
# ... and all of these (transformers resumes without them silently, with a fresh optimizer: not a resume).
_TRAINING_STATE = ("optimizer.pt", "scheduler.pt")


@dataclass(frozen=True)
class RunStart:
    """How a run starts: the checkpoint it resumes from (None: from scratch) and where TensorBoard writes."""

    checkpoint: Path | None
    tensorboard_dir: Path


def prepare_run(output_dir: Path, recipe: TrainRecipe, resume: bool) -> RunStart:
    """Get the run folder ready and record the recipe in it.

    A new run is refused if the folder holds a complete checkpoint; a killed run's leftovers (incomplete
    checkpoints, its log, its TensorBoard folder) are moved aside, so the new log holds only the new run's steps.
    A resume starts from the newest complete checkpoint, with the recipe unchanged but for ``RESUMABLE_CHANGES``.
    Under ``accelerate launch`` the main process does all this; the others then only read where to start.
    """
    from .distributed import is_main, main_first

    with main_first():
        if not is_main():
            return RunStart(last_checkpoint(output_dir) if resume else None, _tensorboard_dir(output_dir, resume=True))
        if resume:
            start = _prepare_resume(output_dir, recipe)
        else:
            _prepare_new_run(output_dir)
            start = RunStart(None, _tensorboard_dir(output_dir, resume=False))
        output_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(output_dir / RECIPE_FILE, json.dumps(recipe.model_dump(), indent=2))
        return start


def _prepare_new_run(output_dir: Path) -> None:
    problems = {folder: checkpoint_problem(folder) for folder in _checkpoints(output_dir)}
    if any(problem is None for problem in problems.values()):
        raise DeepRetrievalError(f"{output_dir} already holds a run; use --resume or another --output-dir")
    for folder, problem in problems.items():
        _set_aside(folder, "incomplete", f"incomplete checkpoint ({problem})")
    for leftover in (output_dir / LOG_FILE, output_dir / TENSORBOARD_DIR, output_dir / BEST_DIR, output_dir / DEV_DIR):
        if leftover.exists():
            _set_aside(leftover, "previous", "left by an earlier run that saved no checkpoint")


def _prepare_resume(output_dir: Path, recipe: TrainRecipe) -> RunStart:
    """Checks first (nothing is touched when the resume is refused), then: incomplete checkpoints newer than the
    one resumed from are moved aside (the resumed run saves checkpoint-N again, never into a torn folder), and
    the log and TensorBoard events are cut back to its step (the steps after it are trained and logged again)."""
    checkpoints = _checkpoints(output_dir)
    if not checkpoints:
        raise DeepRetrievalError(f"{output_dir}: no checkpoint to resume from (run without --resume first)")
    checkpoint, torn = _newest_complete(checkpoints)
    if checkpoint is None:
        found = "; ".join(f"{folder.name}: {problem}" for folder, problem in torn.items())
        raise DeepRetrievalError(
            f"{output_dir}: no complete checkpoint to resume from ({found}); run without --resume to start over"
        )
    _check_settings(output_dir / RECIPE_FILE, recipe)
    for folder, problem in torn.items():
        _set_aside(folder, "incomplete", f"incomplete checkpoint ({problem}); resuming from {checkpoint.name}")
    step = _checkpoint_step(checkpoint)
    assert step is not None  # a complete checkpoint has one
    _cut_log(output_dir / LOG_FILE, step)
    tensorboard_dir = _tensorboard_dir(output_dir, resume=True)
    _cut_events(tensorboard_dir, step)
    return RunStart(checkpoint, tensorboard_dir)


def last_checkpoint(output_dir: Path) -> Path | None:
    """The checkpoint ``--resume`` would continue from: the run's newest complete one (None: there is none)."""
    return _newest_complete(_checkpoints(output_dir))[0]


def _checkpoints(output_dir: Path) -> list[Path]:
    """The run's checkpoint-N folders, newest first."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return [folder for _, folder in sorted(found, reverse=True)]


def _newest_complete(checkpoints: Sequence[Path]) -> tuple[Path | None, dict[Path, str]]:
    """The first complete checkpoint of ``checkpoints`` (newest first), and what is wrong with those before it."""
    torn: dict[Path, str] = {}
    for folder in checkpoints:
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder, torn
        torn[folder] = problem
    return None, torn


def checkpoint_problem(folder: Path) -> str | None:
    """Why training cannot resume from ``folder`` (None: it is complete).

    transformers writes trainer_state.json last, after the weights, optimizer, scheduler and RNG state, so a kill
    while saving leaves a folder without it; the other files are checked too, cheaply, for being missing or cut
    short (a copy, a full disk, or files pruned by hand).
    """
    if _checkpoint_step(folder) is None:
        return "no readable trainer_state.json"
    if not any(_weights_whole(folder / name) for name in _WEIGHTS):
        return "no whole model or adapter weights"
    missing = [name for name in _TRAINING_STATE if not _whole(folder / name)]
    return f"{' and '.join(missing)} missing or cut short" if missing else None


def _checkpoint_step(folder: Path) -> int | None:
    """The global step recorded in ``folder``'s trainer_state.json (None: missing or unreadable)."""
    try:
        step = json.loads((folder / "trainer_state.json").read_text()).get("global_step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def _weights_whole(path: Path) -> bool:
    """Whole weights at ``path``: the file itself, or for a sharded model's index, every shard it lists."""
    if not path.name.endswith(".index.json"):
        return _whole(path)
    try:
        shards = set(json.loads(path.read_text())["weight_map"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return bool(shards) and all(_whole(path.parent / shard) for shard in shards)


def _whole(path: Path) -> bool:
    """``path`` is a file written to its end, as far as its format tells without reading it all."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return False
        if path.suffix == ".safetensors":
            return _safetensors_whole(path)
        if path.suffix in (".pt", ".bin"):
            return zipfile.is_zipfile(path)  # torch.save writes a zip archive, whose directory comes last
        return True
    except OSError:
        return False


def _safetensors_whole(path: Path) -> bool:
    """A safetensors file is an 8-byte header length, a JSON header, then the tensors: its full size is known."""
    size = path.stat().st_size
    with path.open("rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if length > size - 8:
            return False
        try:
            header = json.loads(f.read(length))
            end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return False
    return size == 8 + length + end


def _check_settings(recipe_path: Path, recipe: TrainRecipe) -> None:
    """A resume continues the same run: only ``RESUMABLE_CHANGES`` may differ from the recipe it recorded."""
    if not recipe_path.exists():
        return
    try:
        previous = json.loads(recipe_path.read_text())
    except (OSError, ValueError) as exc:
        previous = exc
    if not isinstance(previous, dict):
        raise DeepRetrievalError(f"{recipe_path}: unreadable ({previous}); restore it, or delete it to resume")
    current = recipe.model_dump()
    changed = [k for k in current if k not in RESUMABLE_CHANGES and previous.get(k) != current[k]]
    if changed:
        raise DeepRetrievalError(f"{recipe_path}: --resume with changed settings: {', '.join(changed)}")


def _set_aside(path: Path, label: str, why: str) -> Path:
    """Rename ``path`` to ``<label>-<time>.<name>`` beside it, with a one-line warning. Never deleted: it may be all
    a user has of a run. The new name matches neither ``checkpoint-*`` nor the log's name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, n = path.with_name(f"{label}-{stamp}.{path.name}"), 1
    while target.exists():
        target, n = path.with_name(f"{label}-{stamp}-{n}.{path.name}"), n + 1
    path.rename(target)
    log.warning("%s: %s; moved aside to %s", path, why, target.name)
    return target


def _cut_log(path: Path, step: int) -> None:
    """Keep the log's records of steps up to ``step`` (the checkpoint resumed from); drop those after it (they are
    trained and logged again) and any line a kill tore. Rewritten atomically."""
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    kept = [line for line in lines if (record := _record(line)) is not None and record["step"] <= step]
    if len(kept) < len(lines) or not text.endswith("\n"):
        log.info("%s: %d line(s) after step %d dropped; those steps run again", path, len(lines) - len(kept), step)
        write_text_atomic(path, "".join(f"{line}\n" for line in kept))


def _tensorboard_dir(output_dir: Path, *, resume: bool) -> Path:
    """Where TensorBoard writes: $TENSORBOARD_LOGGING_DIR if set (transformers honours it too), else
    ``TENSORBOARD_DIR``; a run from before that folder existed continues in its newest timestamped folder."""
    if env := os.environ.get("TENSORBOARD_LOGGING_DIR"):
        return Path(env).expanduser()
    fixed = output_dir / TENSORBOARD_DIR
    if not resume or fixed.is_dir():
        return fixed
    earlier = [d for d in fixed.parent.glob("*") if d.is_dir() and not d.name.startswith("previous-")]
    earlier = [d for d in earlier if any(d.glob("*tfevents*"))]
    return max(earlier, key=lambda d: d.stat().st_mtime, default=fixed)


def _cut_events(log_dir: Path, step: int) -> None:
    """Drop the TensorBoard events of steps after ``step`` from the event files in ``log_dir``, as ``_cut_log`` does
    for the log, and any record a kill tore. Each file is rewritten atomically, under a temporary name TensorBoard
    ignores (no "tfevents" in it). The resumed run then adds its own event file beside them."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    for path in sorted(log_dir.glob("*tfevents*")) if log_dir.is_dir() else []:
        records = list(RawEventFileLoader(str(path)).Load())
        kept = [record for record in records if Event.FromString(record).step <= step]
        # Each record is framed by 16 bytes: a file longer than its records ends in a torn one.
        if len(kept) == len(records) and sum(len(r) + 16 for r in records) == path.stat().st_size:
            continue
        tmp = path.with_name(f".cut.{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            writer = RecordWriter(f)
            for record in kept:
                writer.write(record)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def tensorboard_to(trainer: Any, log_dir: Path) -> None:
    """Point the trainer's TensorBoard callback at ``log_dir`` (transformers 5 has no logging_dir argument: its
    callback takes a writer instead). Only the main process writes events (a writer opens its file at once)."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    from .distributed import is_main

    if is_main() and trainer.pop_callback(TensorBoardCallback) is not None:
        trainer.add_callback(TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir))))


def log_callback(path: Path):
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        """Appends every logged dict (reward, loss, the reward adapter's statistics; the dev evaluations, through
        ``write``) to train_log.jsonl by step, with ``minutes``: wall-clock time since the run started (a resumed
        run continues from its log's last value).

        One ``write`` per record, flushed at once: a kill can tear at most the last line, which ``read_log`` skips
        and a resume drops (``_cut_log``)."""

        def __init__(self) -> None:
            self.started, self.offset = time.monotonic(), 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.monotonic()
            self.offset = max((r.get("minutes", 0.0) for r in read_log(path)), default=0.0)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                self.write(state.global_step, logs)

        def write(self, step: int, record: Mapping[str, Any]) -> None:
            minutes = round(self.offset + (time.monotonic() - self.started) / 60, 4)
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"step": step, **record, "minutes": minutes}) + "\n")

    return JsonlLog()


def read_log(path: Path) -> list[dict]:
    """The training log, one dict per logged step, in step order.

    Records of one step are merged (the end-of-training summary carries the last step's number). Lines a kill
    tore are skipped with a warning. A resume cuts the log back to its checkpoint, so a step is logged once; in a
    log from before that, the last record of a re-logged step wins, whole.
    """
    if not path.exists():
        return []
    by_step: dict[int, dict] = {}
    torn = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        record = _record(line)
        if record is None:
            torn += bool(line.strip())
            continue
        seen = by_step.get(record["step"], {})
        relogged = (seen.keys() & record.keys()) - {"step", "epoch", "minutes"}
        by_step[record["step"]] = record if relogged else {**seen, **record}
    if torn:
        log.warning("%s: %d unreadable line(s) skipped (written by a killed run)", path, torn)
    return [by_step[s] for s in sorted(by_step)]


def _record(line: str) -> dict | None:
    """A log line's record, or None for a line that holds none (blank, or torn by a kill)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("step"), int) else None


def family_stat(record: Mapping[str, Any], stat: str) -> tuple[str, float] | None:
    """The reward adapter's ``stat`` in a log record: ``(key, value)`` for its ``<family>/<stat>`` key, None when
    the record has none.

    The reward adapter prefixes its statistics with the task family's name (``retrieval/metric``,
    ``literature/metric``, ``qa/metric``: ``tasks.TaskReward.batch_stats``); a reader finds them here without
    naming a family. Logs from before the prefix was per family carry ``retrieval/`` for every family: still read.
    """
    from .tasks import TASKS

    for key, value in record.items():
        family, slash, name = key.partition("/")
        if slash and name == stat and family in TASKS:
            return key, value
    return None
