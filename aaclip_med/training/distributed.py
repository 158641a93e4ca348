"""Data-parallel training under ``torchrun``: process group, device, gradient all-reduce.

Only the trainable adapters need synchronising, so instead of wrapping the whole network (and
the frozen CLIP) in DistributedDataParallel, the gradients of the trainable parameters are
averaged across processes with one flat all-reduce per step. Works with gloo (CPU) and NCCL.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistContext", "init_distributed", "all_reduce_gradients", "broadcast_parameters", "barrier"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank, how many there are, which device it uses."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), else a single process.

    Args:
        device: torch device; None picks ``cuda:<LOCAL_RANK>`` when CUDA is available, else cpu.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend)
        logger.info("Joined process group (%s): rank %d of %d", backend, dist.get_rank(), world)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if device is None:
        device = f"cuda:{local_rank}" if use_cuda else "cpu"
    elif world > 1 and device == "cuda":
        device = f"cuda:{local_rank}"
    if str(device).startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    return DistContext(rank=rank, world_size=world, device=torch.device(device))


def all_reduce_gradients(params: list[nn.Parameter], ctx: DistContext) -> None:
    """Average the gradients of ``params`` over all processes (missing gradients count as zero)."""
    if not ctx.distributed:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world_size
    offset = 0
    for param in params:
        n = param.numel()
        param.grad = flat[offset : offset + n].view_as(param).clone()
        offset += n


@torch.no_grad()
def broadcast_parameters(params: list[nn.Parameter], ctx: DistContext) -> None:
    """Copy rank 0's values of ``params`` to every process (identical start whatever the seeds)."""
    if ctx.distributed:
        for param in params:
            dist.broadcast(param.data, src=0)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
