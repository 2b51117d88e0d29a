"""Where this process runs: device, rank and world size, from `torchrun`'s environment or a single process.

Why a small object rather than globals: the loop, the batch sampler and checkpointing all need the same answers,
and a test can build one for a single CPU process without touching `torch.distributed`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from s2f.numerics import pin_threads


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_runtime(cpu_threads: int = 0) -> Runtime:
    """Join the process group `torchrun` describes (NCCL on CUDA, gloo on CPU), or run alone.

    Each process takes the GPU of its LOCAL_RANK; on CPU every process shares the host. `cpu_threads`: torch's
    threads in this process (0: torch's choice; under `torchrun` on a CPU, give each rank its share of the
    cores), which the weights depend on (`s2f.numerics.pin_threads`).
    """
    pin_threads(cpu_threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world == 1:
        return Runtime(torch.device("cuda" if cuda else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(local_rank)
    return Runtime(torch.device(f"cuda:{local_rank}" if cuda else "cpu"), dist.get_rank(), dist.get_world_size())


def teardown_runtime(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def mean_across_ranks(values: dict[str, float], runtime: Runtime) -> dict[str, float]:
    """Average logged numbers over ranks so the curve describes the whole global batch, not rank 0's share."""
    if not runtime.distributed:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / runtime.world_size for k, v in zip(keys, t)}
