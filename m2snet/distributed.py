"""Multi-process training through torchrun (DDP): NCCL on GPUs, gloo on CPUs.

    torchrun --standalone --nproc_per_node 2 -m m2snet train CONFIG.yaml

One process per GPU (or CPU share). ``batch_size`` stays the global batch: each process takes
its share. Process 0 writes the run folder and validates; the others only train.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup() -> Context:
    """Join the process group torchrun describes (WORLD_SIZE > 1), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return Context(device=torch.device("cuda" if cuda else "cpu"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    return Context(rank=dist.get_rank(), world=dist.get_world_size(), device=device)


def mean(ctx: Context, value: float) -> float:
    """The value averaged over processes (itself in a single process)."""
    if not ctx.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world


def any_true(ctx: Context, flag: bool) -> bool:
    """True on every process if it is true on one: collective decisions (time limits)."""
    if not ctx.active:
        return flag
    t = torch.tensor([1 if flag else 0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(ctx: Context) -> None:
    if ctx.active:
        dist.barrier()


def teardown(ctx: Context) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()
