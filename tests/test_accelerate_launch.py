"""``deepretrieval train`` launched as ``accelerate launch`` launches it, in two CPU processes: each process scores
its own completions only, the two together the whole step's batch, and only the main process writes the run
folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from deepretrieval.errors import DeepRetrievalError
from deepretrieval.recipe import load_recipe
from deepretrieval.runs import read_log

from .conftest import tiny_recipe

ROOT = Path(__file__).resolve().parents[1]

# Runs in each launched process: records which example ids this process scored, then trains as the CLI does.
DRIVER = """
import json, os, sys
from pathlib import Path

import deepretrieval.search.folders as folders

folders.index_cache_dir = lambda: Path(sys.argv[2])  # the test's own index cache
from deepretrieval.tasks import base

scored = base.TaskReward.score_with_verdicts


def recording(self, completions, example_ids):
    with open(Path(sys.argv[3]) / f"scored-{os.environ['RANK']}.jsonl", "a") as f:
        f.write(json.dumps(list(example_ids)) + "\\n")
    return scored(self, completions, example_ids)


base.TaskReward.score_with_verdicts = recording
from deepretrieval.recipe import TrainRecipe
from deepretrieval.train import train

train(TrainRecipe(**json.loads(sys.argv[1])))
"""


@pytest.mark.slow
def test_two_processes_each_score_their_own_completions_and_one_writes(tmp_path):
    recipe = tiny_recipe(tmp_path / "run", eval_steps=2, eval_limit=2, max_steps=2)
    (tmp_path / "scored").mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    # What `accelerate launch --multi_gpu` runs (torch's elastic launcher), on CPU slots (ACCELERATE_USE_CPU, as
    # `accelerate launch --cpu` sets it; that one starts several processes only through MPI).
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    args = [json.dumps(recipe.model_dump()), str(tmp_path / "indexes"), str(tmp_path / "scored")]
    done = subprocess.run([*launch, str(driver), *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    per_process = {
        rank: [json.loads(line) for line in (tmp_path / "scored" / f"scored-{rank}.jsonl").read_text().splitlines()]
        for rank in (0, 1)
    }
    assert [len(calls) for calls in per_process.values()] == [2, 2]  # one reward batch per step and process
    for step in range(2):
        mine, theirs = per_process[0][step], per_process[1][step]
        # Each process: its own prompts' whole groups (prompts_per_step x num_generations completions).
        assert len(mine) == len(theirs) == recipe.prompts_per_step * recipe.num_generations
        assert not set(mine) & set(theirs)  # disjoint ...
        both = Counter(mine + theirs)  # ... and together the step's batch: 2 x prompts_per_step whole groups
        assert len(both) == 2 * recipe.prompts_per_step
        assert set(both.values()) == {recipe.num_generations}

    run = Path(recipe.output_dir)
    log = read_log(run / "train_log.jsonl")
    assert [r["step"] for r in log] == [0, 1, 2]  # each step once: one writer
    assert all("dev/" + recipe.eval_measure in r for r in log if r["step"] in (0, 2))
    assert (run / "final" / "policy.json").is_file() and (run / "last" / "policy.json").is_file()
    assert len(list((run / "runs" / "train").glob("*tfevents*"))) == 1  # one TensorBoard writer
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # nothing half-written left behind


@pytest.mark.parametrize("name", ["ddp", "zero2", "zero3", "fsdp"])
def test_the_accelerate_configs_are_accelerates(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ROOT / "recipes" / "accelerate" / f"{name}.yaml"))
    assert config.distributed_type.value == {"ddp": "MULTI_GPU", "fsdp": "FSDP"}.get(name, "DEEPSPEED")
    if name.startswith("zero"):
        assert config.deepspeed_config["zero_stage"] == int(name[-1])


def test_a_sharded_launch_refuses_what_needs_the_whole_model(tmp_path, monkeypatch):
    from deepretrieval.train import check_sharding

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(DeepRetrievalError, match="FSDP shards the model across processes: set eval_steps: 0"):
        check_sharding(tiny_recipe(tmp_path))
    check_sharding(tiny_recipe(tmp_path, eval_steps=0))
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    check_sharding(tiny_recipe(tmp_path))  # ZeRO-2: every process holds the whole model
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    with pytest.raises(DeepRetrievalError, match="ZeRO-3 shards the model across processes: set lora: false"):
        check_sharding(tiny_recipe(tmp_path, eval_steps=0, lora=True))


def test_the_vllm_server_recipe_reaches_trl(tmp_path):
    from deepretrieval.train import grpo_config

    recipe = load_recipe(ROOT / "recipes" / "gpu-vllm-server.yaml", {"bf16": False})  # no GPU here
    config = grpo_config(recipe, tmp_path, stops=[7])
    assert (config.use_vllm, config.vllm_mode, config.vllm_server_base_url) == (True, "server", "http://localhost:8000")
    assert config.generation_kwargs == {"stop_token_ids": [7]}  # the answer's stop tokens reach the server
