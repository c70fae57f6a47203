"""Training resume survives kills: torn checkpoints, stale logs, re-logged steps, copied run folders, kill -9.

Real GRPO runs with the tiny random model. One finished 3-step run (a checkpoint every step) is trained once per
module; the tests resume copies of it, each made to look like what a kill leaves behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepretrieval.errors import DeepRetrievalError
from deepretrieval.recipe import TrainRecipe
from deepretrieval.runs import LOG_FILE, last_checkpoint, read_log
from deepretrieval.train import TrainResult, train

pytestmark = pytest.mark.slow

# Wall-clock values (and the log's minutes) differ between any two runs; train_loss is the mean over the steps of
# one start.
TIMING = ("step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "minutes")


def recipe_for(output_dir: Path, max_steps: int = 3) -> TrainRecipe:
    """About 2 s a step; two generations and a high learning rate still give rewards that vary between steps."""
    return TrainRecipe(
        data="demo",
        model="tiny-random",
        mode="expand",
        reward="recall-lenient",
        context_docs=0,
        max_steps=max_steps,
        save_steps=1,
        prompts_per_step=1,
        num_generations=2,
        max_completion_length=6,
        learning_rate=5e-2,
        output_dir=str(output_dir),
    )


def copy_run(source: Path, target: Path) -> Path:
    """A copy of a run folder whose recipe names the copy, as if it had been trained there."""
    shutil.copytree(source, target)
    recipe = json.loads((target / "recipe.json").read_text())
    (target / "recipe.json").write_text(json.dumps({**recipe, "output_dir": str(target)}))
    return target


def tear(checkpoint: Path) -> None:
    """What a kill during the save leaves: transformers writes the weights, then the optimizer, scheduler and RNG
    state, then trainer_state.json; here the optimizer is half written and nothing after it exists."""
    optimizer = checkpoint / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])
    for name in ("scheduler.pt", "rng_state.pth", "trainer_state.json"):
        (checkpoint / name).unlink()


def step_records(log_path: Path) -> list[dict]:
    """The per-step records as written (not merged by read_log), without their timings."""
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records if "reward" in r]


def logged_steps(log_path: Path) -> list[int]:
    return [r["step"] for r in step_records(log_path)]


def event_steps(log_dir: Path, tag: str = "train/reward") -> list[int]:
    """The steps of every ``tag`` event in the TensorBoard folder's event files, sorted (duplicates kept)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps = []
    for path in log_dir.glob("*tfevents*"):
        for event in EventFileLoader(str(path)).Load():
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return sorted(steps)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> TrainResult:
    """An uninterrupted run: 3 steps, checkpoint-1..3, final. Copy it; never change it."""
    return train(recipe_for(tmp_path_factory.mktemp("finished") / "run"))


@pytest.fixture(scope="module")
def resumed_run(finished_run, tmp_path_factory) -> TrainResult:
    """A run killed after logging step 3 whose last checkpoint is checkpoint-1, resumed to step 3."""
    run = copy_run(finished_run.output_dir, tmp_path_factory.mktemp("resumed") / "run")
    for lost in ("checkpoint-2", "checkpoint-3", "final"):
        shutil.rmtree(run / lost)
    return train(recipe_for(run), resume=True)


def test_resume_skips_a_torn_checkpoint_for_the_previous_complete_one(finished_run, tmp_path, caplog):
    run = copy_run(finished_run.output_dir, tmp_path / "run")
    shutil.rmtree(run / "final")
    tear(run / "checkpoint-3")
    assert last_checkpoint(run) == run / "checkpoint-2"
    with caplog.at_level(logging.WARNING, logger="deepretrieval.runs"):
        result = train(recipe_for(run), resume=True)
    assert result.steps == 3
    assert logged_steps(result.log_path) == [1, 2, 3]
    (moved,) = run.glob("incomplete-*.checkpoint-3")  # kept, under a name no tool takes for a checkpoint
    assert not (moved / "trainer_state.json").exists() and (moved / "model.safetensors").exists()
    assert (run / "checkpoint-3" / "trainer_state.json").exists()  # saved again by the resumed run
    (warning,) = [r.getMessage() for r in caplog.records if "checkpoint-3" in r.getMessage()]
    assert "moved aside" in warning and "resuming from checkpoint-2" in warning and "\n" not in warning


def test_resume_without_a_complete_checkpoint_is_one_error(finished_run, tmp_path):
    run = copy_run(finished_run.output_dir, tmp_path / "run")
    for checkpoint in ("checkpoint-1", "checkpoint-2", "checkpoint-3"):
        tear(run / checkpoint)
    assert last_checkpoint(run) is None
    with pytest.raises(DeepRetrievalError, match=r"no complete checkpoint .*checkpoint-3: no readable trainer_state"):
        train(recipe_for(run), resume=True)
    assert not list(run.glob("incomplete-*"))  # a refused resume changes nothing


@pytest.mark.parametrize(
    "damage",
    [
        "rm trainer_state.json",
        "cut trainer_state.json",
        "rm model.safetensors",
        "cut model.safetensors",
        "cut optimizer.pt",
        "rm scheduler.pt",
    ],
)
def test_a_checkpoint_missing_or_cutting_short_a_file_is_incomplete(finished_run, tmp_path, damage):
    from deepretrieval.runs import checkpoint_problem

    checkpoint = shutil.copytree(finished_run.output_dir / "checkpoint-1", tmp_path / "checkpoint-1")
    assert checkpoint_problem(checkpoint) is None
    action, name = damage.split()
    if action == "rm":
        (checkpoint / name).unlink()
    else:
        (checkpoint / name).write_bytes((checkpoint / name).read_bytes()[:-100])
    assert checkpoint_problem(checkpoint) is not None


def test_a_new_run_in_a_killed_runs_folder_starts_a_fresh_log(tmp_path):
    """A run killed before its first checkpoint leaves a log (its last line torn); a new run there moves it aside."""
    run = tmp_path / "run"
    run.mkdir()
    stale = '{"step": 1, "reward": 9.0, "stale": true}\n{"step": 2, "rew'
    (run / LOG_FILE).write_text(stale)
    result = train(recipe_for(run, max_steps=1))
    assert logged_steps(result.log_path) == [1]
    assert not any("stale" in r for r in read_log(result.log_path))
    (moved,) = run.glob(f"previous-*.{LOG_FILE}")
    assert moved.read_text() == stale


def test_a_new_run_moves_an_incomplete_checkpoint_aside_and_refuses_a_complete_one(finished_run, tmp_path):
    from deepretrieval.runs import prepare_run

    run = copy_run(finished_run.output_dir, tmp_path / "run")
    with pytest.raises(DeepRetrievalError, match="already holds a run"):
        prepare_run(run, recipe_for(run), resume=False)
    for checkpoint in ("checkpoint-1", "checkpoint-2", "checkpoint-3"):
        tear(run / checkpoint)
    prepare_run(run, recipe_for(run), resume=False)
    assert len(list(run.glob("incomplete-*.checkpoint-*"))) == 3 and not list(run.glob("checkpoint-*"))
    assert len(list(run.glob(f"previous-*.{LOG_FILE}"))) == 1 and not (run / LOG_FILE).exists()


def test_read_log_skips_a_torn_line_and_a_relogged_step_replaces_the_old_record(tmp_path, caplog):
    """Logs written before resumes cut the log: a step may be there twice, and a kill may have torn a line."""
    lines = [
        {"step": 1, "reward": 0.1, "retrieval/metric": 0.5},
        {"step": 2, "reward": 0.2, "retrieval/metric": 0.6},
        {"step": 2, "reward": 0.3},  # re-logged by a resume: it wins whole (no stale metric kept)
        {"step": 2, "train_runtime": 9.0},  # the end-of-training summary joins its step
    ]
    path = tmp_path / LOG_FILE
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 3, "rew')
    with caplog.at_level(logging.WARNING, logger="deepretrieval.runs"):
        records = read_log(path)
    assert records == [lines[0], {"step": 2, "reward": 0.3, "train_runtime": 9.0}]
    assert "1 unreadable line" in caplog.text


def test_family_stat_finds_the_reward_adapters_value_under_any_familys_prefix():
    """Readers (the CLI's bar, the reward curve, the learning benchmark) find ``<family>/<stat>`` without naming a
    family; a log from before the per-family prefix (``retrieval/`` for all) still reads."""
    from deepretrieval.runs import family_stat

    assert family_stat({"step": 1, "retrieval/metric": 0.5}, "metric") == ("retrieval/metric", 0.5)
    assert family_stat({"literature/metric": 0.25, "reward": 1.0}, "metric") == ("literature/metric", 0.25)
    record = {"completions/format_error_ratio": 0.9, "qa/format_error_ratio": 0.1}  # TRL's prefix is no family
    assert family_stat(record, "format_error_ratio") == ("qa/format_error_ratio", 0.1)
    assert family_stat({"qa/metric": 0.2}, "failures") is None
    assert family_stat({"metric": 0.2, "kl": 0.0}, "metric") is None  # a bare key is not the adapter's


def test_a_resumed_run_logs_each_step_once_in_its_log_and_in_tensorboard(resumed_run):
    run = resumed_run.output_dir
    assert resumed_run.steps == 3
    assert logged_steps(resumed_run.log_path) == [1, 2, 3]
    assert [r["step"] for r in read_log(resumed_run.log_path) if "reward" in r] == [1, 2, 3]
    (log_dir,) = (run / "runs").iterdir()  # one TensorBoard run, not one per start
    assert len(list(log_dir.glob("*tfevents*"))) == 2  # the first start's events (cut back to step 1), then ours
    assert event_steps(log_dir) == [1, 2, 3]


def test_a_resumed_run_logs_what_an_uninterrupted_run_logs(finished_run, resumed_run):
    """TRL 1.16 / transformers 5 resume deterministically here: the checkpoint restores the weights, Adam's
    moments, the scheduler and the Python/NumPy/torch RNG states, and the seeded sampler skips the batches already
    trained on. So every value logged per step (rewards, losses, gradient norms, entropy, token counts, retrieval
    metrics) is identical; only wall-clock timings differ, and train_loss, a mean over the steps of one start."""
    assert step_records(resumed_run.log_path) == step_records(finished_run.log_path)
    assert len({r["reward"] for r in step_records(finished_run.log_path)}) > 1  # rewards vary: a real comparison


def test_a_copied_run_resumes_in_its_new_folder_but_other_changes_are_refused(finished_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(finished_run.output_dir, copy)  # its recipe.json still names the original folder
    with pytest.raises(DeepRetrievalError, match=r"changed settings: learning_rate$"):
        train(recipe_for(copy).model_copy(update={"learning_rate": 1e-3}), resume=True)
    result = train(recipe_for(copy, max_steps=4), resume=True)
    assert result.steps == 4
    assert logged_steps(result.log_path) == [1, 2, 3, 4]
    assert json.loads((copy / "recipe.json").read_text())["output_dir"] == str(copy)
    assert logged_steps(finished_run.log_path) == [1, 2, 3]  # the original is untouched


# Trains the recipe given as JSON, in a process of its own that the test kills.
TRAIN_SCRIPT = """
import sys
from deepretrieval.recipe import TrainRecipe
from deepretrieval.train import train
train(TrainRecipe.model_validate_json(sys.argv[1]))
"""


def start_and_kill(recipe: TrainRecipe, when: Path, output: Path) -> None:
    """Run ``recipe`` in a subprocess and SIGKILL it as soon as ``when`` appears: during or right after that
    checkpoint's save, whichever the race gives (both must resume)."""
    with output.open("w") as out:
        command = [sys.executable, "-c", TRAIN_SCRIPT, recipe.model_dump_json()]
        process = subprocess.Popen(command, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 120
        while not when.exists():
            assert process.poll() is None, f"training exited before {when.name}:\n{output.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"no {when.name} after 120 s"
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()


def test_kill_9_while_saving_a_checkpoint_then_resume(finished_run, tmp_path):
    run = tmp_path / "run"
    recipe = recipe_for(run)
    start_and_kill(recipe, run / "checkpoint-2", tmp_path / "killed.out")
    assert not (run / "final").exists()
    result = train(recipe, resume=True)
    assert result.steps == 3
    assert logged_steps(result.log_path) == [1, 2, 3]
    assert (result.final_dir / "policy.json").exists() and (result.final_dir / "model.safetensors").exists()
    assert event_steps(run / "runs" / "train") == [1, 2, 3]
    assert step_records(result.log_path) == step_records(finished_run.log_path)  # as if never killed
