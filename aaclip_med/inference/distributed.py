"""Sharding a run across processes started by ``torchrun`` (gloo on CPU works).

Each rank processes cases ``rank, rank + world, ...``; rank 0 merges the tables after a barrier.
Only small Python objects (status lists) are exchanged, always over gloo, so the same code runs on
CPU-only machines and on GPUs (where each rank uses ``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import NamedTuple, TypeVar

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "shard", "gather_objects", "barrier", "shutdown_distributed", "rank_device"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class DistInfo(NamedTuple):
    rank: int
    world_size: int
    created: bool  # this module started the process group (and so ends it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the process group when ``WORLD_SIZE`` > 1 (torchrun sets RANK/WORLD_SIZE/MASTER_*)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, False)
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), False)
    dist.init_process_group(backend="gloo")
    logger.info("rank %d of %d joined (gloo)", dist.get_rank(), world)
    return DistInfo(dist.get_rank(), dist.get_world_size(), True)


def rank_device(device: str | None) -> str | None:
    """``cuda:LOCAL_RANK`` under torchrun on a GPU machine when no device was asked for."""
    if device is None and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def shard(items: Sequence[T], info: DistInfo) -> list[T]:
    """This rank's share of ``items`` (round robin, so slow cases spread evenly)."""
    return list(items[info.rank :: info.world_size])


def gather_objects(obj: object, info: DistInfo) -> list:
    """Every rank's ``obj`` (in rank order); a one-element list without a process group."""
    if info.world_size <= 1:
        return [obj]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        dist.barrier()


def shutdown_distributed(info: DistInfo) -> None:
    if info.created and dist.is_initialized():
        dist.destroy_process_group()
