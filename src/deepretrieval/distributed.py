"""Training under ``accelerate launch`` (several processes, one per GPU or CPU slot): which process writes the run's
files, where the processes wait for each other, and how they agree on a decision one of them makes.

TRL's GRPOTrainer runs in every process: each samples completions for its share of the step's prompts and scores
them with its own reward adapter (one batched search per process), and the rewards are gathered for the group
advantages. What is ours is kept to one writer: the main process prepares the run folder, builds a cached index
first (the others then load it), saves policies, writes the log and TensorBoard events and evaluates the dev
split; a decision it alone takes (stop early, the time budget spent) is broadcast, so that every process stops
at the same step. A single process is its own main process: nothing here costs it anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

# What ``accelerate launch`` sets in each process's environment for a sharded run.
_SHARDED = (
    ("FSDP", "ACCELERATE_USE_FSDP", None),
    ("DeepSpeed ZeRO-3", "ACCELERATE_USE_DEEPSPEED", ("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")),
)


def processes() -> int:
    """How many processes train together (``WORLD_SIZE``, which ``accelerate launch`` and torchrun set; 1 alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Whether this process writes the run's files: the only one, or rank 0 of a launch."""
    return int(os.environ.get("RANK", "0")) == 0


def _group():
    """torch.distributed, its process group initialised as accelerate initialises it (the launcher's ``env://``
    rendezvous; gloo on CPUs, NCCL on GPUs), so that the trainer's accelerator later finds it ready. Not through
    accelerate's own state: transformers resets that when the trainer's arguments are made."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
        if not cpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("gloo" if cpu else "nccl")
    return dist


def wait_for_everyone() -> None:
    if processes() > 1:
        _group().barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """The main process runs the block first (building what the others then load: an index, a database); the
    others run it after."""
    if processes() > 1 and not is_main():
        wait_for_everyone()
    yield
    if processes() > 1 and is_main():
        wait_for_everyone()


def agree(value: bool) -> bool:
    """The main process's ``value``, in every process (a collective call: every process must make it)."""
    if processes() == 1:
        return value
    shared = [value]
    _group().broadcast_object_list(shared, src=0)
    return bool(shared[0])


def sharded_launch() -> str | None:
    """The name of the launch's parameter sharding (FSDP, DeepSpeed ZeRO-3), None when every process holds the
    whole model (one process, DDP, ZeRO-2)."""
    for name, flag, stage in _SHARDED:
        on = os.environ.get(flag, "").lower() in ("1", "true")
        if on and (stage is None or os.environ.get(stage[0]) == stage[1]):
            return name
    return None
