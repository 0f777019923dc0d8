"""Several processes (``torchrun``): process-group set-up and the sums the trainer reduces.

One process (no ``WORLD_SIZE`` in the environment) needs no process group; every helper here
then does nothing.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

_HOST_GROUP = None  # a gloo group for votes on the host (the default group when it is gloo)


def launched_world_size() -> int:
    """The number of ranks torchrun started (``WORLD_SIZE``; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str):
    """(rank, world_size, local_rank) from torchrun's environment, the process group joined
    (``device`` ``"cuda"``: NCCL, else gloo); one process: (0, 1, 0)."""
    world = launched_world_size()
    if world <= 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if device == "cuda" else "gloo",
                            timeout=datetime.timedelta(minutes=30))
    global _HOST_GROUP
    _HOST_GROUP = dist.new_group(backend="gloo") if device == "cuda" else None
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


def default_dali_threads() -> int:
    """DALI threads per rank: the CPUs this process may use, shared among the node's ranks
    (``LOCAL_WORLD_SIZE`` from torchrun)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def any_rank(flag: bool, world: int) -> bool:
    """Whether ``flag`` is set on any rank. The vote goes through a CPU (gloo) group, so it
    never waits for the GPU."""
    if world == 1:
        return flag
    votes = torch.tensor([1 if flag else 0])
    dist.all_reduce(votes, group=_HOST_GROUP)
    return bool(votes.item())
