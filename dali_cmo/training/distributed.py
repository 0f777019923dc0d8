"""Several processes (``torchrun``): process-group set-up and the sums the trainer reduces.

One process (no ``WORLD_SIZE`` in the environment) needs no process group; every helper here
then does nothing.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist


def init_distributed(args):
    """(rank, world_size, local_rank) from torchrun's environment; one process: (0, 1, 0)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo",
                            timeout=datetime.timedelta(minutes=30))
    return dist.get_rank(), dist.get_world_size(), local_rank


def all_reduce_sum(tensor: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(tensor)
    return tensor


def gather_objects(obj, world: int) -> list:
    """``obj`` of every rank, in rank order (``[obj]`` for one process)."""
    if world == 1:
        return [obj]
    gathered = [None] * world
    dist.all_gather_object(gathered, obj)
    return gathered


def finish(world: int) -> None:
    """Tear the process group down (nothing for one process)."""
    if world > 1:
        dist.destroy_process_group()
