"""Several processes under ``torchrun``: the process group, each rank's device, and what ranks exchange.

One module for training and inference. ``torchrun`` (one host or many) sets ``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK`` and the rendezvous variables; a plain ``python`` run is a world of one
and every helper here is then a no-op. The backend is NCCL when the processes use CUDA devices
and gloo otherwise, so the same code runs on CPU-only machines.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from aaclip_med.errors import ParameterError

__all__ = [
    "DistContext",
    "barrier",
    "broadcast_parameters",
    "check_device",
    "gather_objects",
    "init_distributed",
    "shard",
    "shutdown_distributed",
    "working_alone",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_ALONE = contextvars.ContextVar("aaclip_med_working_alone", default=False)


@contextlib.contextmanager
def working_alone() -> Iterator[None]:
    """Inside, :func:`init_distributed` gives a world of one even in a torchrun process group.

    For ranks that share work out themselves and then run whole jobs on their own (a PACS archive
    rank inferring one series with ``run_inference``): the job's collectives would otherwise wait
    for ranks that are busy with other series. The device stays this rank's.
    """
    token = _ALONE.set(True)
    try:
        yield
    finally:
        _ALONE.reset(token)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank, how many there are, which device it uses."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    created: bool = False  # this process started the process group (and so ends it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def check_device(device: str | torch.device | None) -> torch.device | None:
    """The device named by ``device``, refused at once when this machine does not have it.

    Torch would fail later (after the model has loaded) with "Expected a torch.device with a
    specified index" or "Torch not compiled with CUDA enabled".

    Returns:
        The ``torch.device``; None when ``device`` is None (the caller picks its default).

    Raises:
        ValueError: naming the device and what this machine has.
    """
    if device is None:
        return None
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ParameterError("device", device, "not a device name (cpu, cuda, cuda:N, mps)") from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            cuda = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
            raise ParameterError("device", device, f"no CUDA device is available (torch {torch.__version__} {cuda}); "
                                 "use {device}=cpu")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ParameterError("device", device, f"this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return resolved


def _rank_device(device: str | torch.device | None, world: int, local_rank: int) -> torch.device:
    if device is None:
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and world > 1:
        return torch.device(f"cuda:{local_rank}")  # one GPU per process
    return device


def init_distributed(device: str | torch.device | None = None) -> DistContext:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), else a world of one.

    Args:
        device: torch device; None picks ``cuda:<LOCAL_RANK>`` when CUDA is available, else cpu.
            A bare ``cuda`` becomes ``cuda:<LOCAL_RANK>`` under torchrun.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = _rank_device(check_device(device), world, local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if _ALONE.get():
        return DistContext(0, 1, resolved, False)
    created = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        created = True
        logger.info("Joined process group (%s): rank %d of %d on %s", backend, dist.get_rank(), world, resolved)
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), resolved, created)
    return DistContext(0, 1, resolved, False)


def shutdown_distributed(ctx: DistContext) -> None:
    """End the process group if this process started it."""
    if ctx.created and dist.is_initialized():
        dist.destroy_process_group()


def shard(items: Sequence[T], ctx: DistContext) -> list[T]:
    """This rank's share of ``items`` (round robin, so slow items spread evenly)."""
    return list(items[ctx.rank :: ctx.world_size])


def gather_objects(obj: object, ctx: DistContext) -> list:
    """Every rank's ``obj`` (picklable, small), in rank order; a one-element list in a world of one."""
    if not ctx.distributed:
        return [obj]
    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def broadcast_parameters(params: Sequence[nn.Parameter], ctx: DistContext) -> None:
    """Copy rank 0's values of ``params`` to every process (identical start whatever the seeds)."""
    if ctx.distributed:
        for param in params:
            dist.broadcast(param.data, src=0)


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op in a world of one)."""
    if ctx.distributed:
        dist.barrier()
