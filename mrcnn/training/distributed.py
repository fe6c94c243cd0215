"""torch.distributed helpers: one process per device, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m mrcnn train ...`` sets RANK, WORLD_SIZE, LOCAL_RANK and
MASTER_ADDR/PORT; :func:`setup` reads them and joins the process group (NCCL on CUDA, gloo on
CPU). Without them training runs in one process and every helper here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """rank, world size and local rank of this process (0, 1, 0 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def info() -> DistInfo:
    """This process's place in the process group (from the group when initialised, else the
    environment torchrun sets)."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return DistInfo(dist.get_rank(), dist.get_world_size(), local)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (idempotent); return :func:`info`.

    Args:
        device: this process's device; CUDA uses NCCL, anything else gloo.
    """
    current = info()
    if current.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return info()


def device_for_rank(device: torch.device, local_rank: int) -> torch.device:
    """One CUDA device per local process: "cuda" becomes "cuda:<local_rank>"."""
    if device.type == "cuda" and device.index is None:
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return device


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``module`` when distributed, else ``module`` itself.

    DDP broadcasts rank 0's weights at construction, so all ranks start identical.
    """
    if not info().enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def any_flag(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any rank (used to stop all ranks together)."""
    if not info().enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)
