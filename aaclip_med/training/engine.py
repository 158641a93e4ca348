"""One training stage as an Ignite engine: the iteration step, optimiser, schedule, precision, DDP.

The engine runs without a data loader (``data=None``, fixed ``epoch_length``): the step pulls its
batch from :class:`EpochBatches`, which an ``EPOCH_STARTED`` handler positions from the engine's
iteration counter. That makes mid-epoch resume exact (Ignite alone would restart the epoch's data).

The stage's losses are computed by :class:`StageObjective`, a small module that holds only the
stage's trainable parts. Under ``torchrun`` it is wrapped in PyTorch's DistributedDataParallel, so
DDP averages exactly the trainable gradients over the processes (the frozen CLIP is not part of
the wrapped module and is never synchronised).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from ignite.engine import Engine, Events
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from aaclip_med.distributed import DistContext
from aaclip_med.keys import Keys
from aaclip_med.model import AAClip
from aaclip_med.precision import autocast, resolve_precision
from aaclip_med.training.batches import EpochBatches
from aaclip_med.training.config import StageConfig, TrainConfig
from aaclip_med.training.freeze import STAGE_MODULES, freeze_for_stage
from aaclip_med.training.objectives import stack_anchors, stage1_losses, stage2_losses

__all__ = ["StageObjective", "StageParts", "build_stage_trainer", "make_loss_fn", "run_stage_engine"]

logger = logging.getLogger(__name__)


class StageObjective(nn.Module):
    """``batch -> losses`` of one stage, as a module whose parameters are the stage's trainable ones.

    The trainable modules are registered here (shared with the network); the network itself is
    reached through ``loss_fn`` only, so wrapping this module in DDP synchronises the trainable
    parameters and nothing else, while DDP's hooks still see the whole forward computation.

    Args:
        model: the network.
        stage: 1 or 2 (which modules are registered, see ``STAGE_MODULES``).
        loss_fn: ``batch -> {"loss", ...}`` computed with ``model``.
    """

    def __init__(self, model: AAClip, stage: int, loss_fn: Callable[[dict], dict[str, torch.Tensor]]) -> None:
        super().__init__()
        modules = model.trainable_modules()
        self.trainable = nn.ModuleDict({name: modules[name] for name in STAGE_MODULES[stage]})
        self.loss_fn = loss_fn

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.loss_fn(batch)


@dataclass
class StageParts:
    """What a stage's engine works with; handlers and checkpoints read it."""

    stage: int
    model: AAClip
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: Any  # torch.amp.GradScaler for fp16 on CUDA, else None
    batches: EpochBatches
    ctx: DistContext
    objective: nn.Module  # StageObjective, wrapped in DistributedDataParallel under torchrun
    precision: str  # resolved: fp32, bf16 or fp16


def make_loss_fn(
    model: AAClip, stage: int, config: TrainConfig, descriptions: Mapping[str, str]
) -> Callable[[dict], dict[str, torch.Tensor]]:
    """``batch -> losses`` of ``stage``; Stage 2 computes its fixed anchors once, here."""
    if stage == 1:
        def stage1(batch: dict) -> dict[str, torch.Tensor]:
            descs = [descriptions[c] for c in batch[Keys.CLASS_NAME]]
            return stage1_losses(model, batch, descs, config.disentangle_weight, config.stage1_levels,
                                 config.stage1_feature_chunk)

        return stage1
    from aaclip_med.training.objectives import fixed_anchor_table

    table = fixed_anchor_table(model, list(descriptions.values()))
    logger.info("Stage 2 anchors fixed from the Stage-1 text encoder for %d description(s)", len(table))

    def stage2(batch: dict) -> dict[str, torch.Tensor]:
        anchors = stack_anchors(table, [descriptions[c] for c in batch[Keys.CLASS_NAME]])
        return stage2_losses(model, batch, anchors, config.image_scale())

    return stage2


def _optimizer(params: list[nn.Parameter], cfg: StageConfig):
    optimizer = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas))
    scheduler = None
    if cfg.milestones:
        # stepped every iteration, so milestones count iterations (spec 8)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), gamma=cfg.lr_factor)
    return optimizer, scheduler


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _wrap(objective: StageObjective, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around the objective under torchrun; the objective itself otherwise."""
    if not ctx.distributed:
        return objective
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # DDP broadcasts rank 0's trainable parameters here, so every process starts from the same values
    return DistributedDataParallel(objective, device_ids=device_ids, broadcast_buffers=False)


def _step_fn(parts: StageParts) -> Callable[[Engine, Any], dict]:
    """The iteration: forward under autocast, backward (DDP averages gradients), step, schedule.

    Parameters stay fp32 (master weights); the losses are computed in fp32 whatever the autocast
    dtype (aaclip_med.losses); fp16 on CUDA scales the loss against gradient underflow.
    """
    optimizer, scaler = parts.optimizer, parts.scaler

    def step(engine: Engine, _unused: Any) -> dict[str, float]:
        batch = _to_device(parts.batches.next(), parts.ctx.device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(parts.precision, parts.ctx.device):
            losses = parts.objective(batch)
        lr = optimizer.param_groups[0]["lr"]  # the rate this step uses (logged before scheduling)
        (scaler.scale(losses["loss"]) if scaler else losses["loss"]).backward()
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if parts.scheduler is not None:
            parts.scheduler.step()
        out = {k: float(v.detach()) for k, v in losses.items()}
        out["lr"] = lr
        return out

    return step


def build_stage_trainer(
    model: AAClip,
    stage: int,
    config: TrainConfig,
    batches: EpochBatches,
    descriptions: Mapping[str, str],
    ctx: DistContext,
    precision: str | None = None,
) -> tuple[Engine, StageParts]:
    """An Ignite engine that trains ``stage`` of AA-CLIP; run it with ``run_stage_engine``.

    Args:
        model: the network, already on ``ctx.device``.
        stage: 1 (text adapters + projection) or 2 (image adapters + heads).
        config: the run's settings (``config.stage_config(stage)`` for the optimiser).
        batches: this process's batches.
        descriptions: class name -> description, for every class of the data.
        ctx: distributed context.
        precision: the resolved precision (fp32, bf16 or fp16); None resolves ``config.precision``
            on ``ctx.device`` (``aaclip_med.precision.resolve_precision``).

    Returns:
        (engine, parts); the engine's output per iteration is a dict of floats (losses, lr).
    """
    precision = precision or resolve_precision(config.precision, ctx.device)
    model.set_grad_checkpointing(config.grad_checkpointing)
    params = freeze_for_stage(model, stage)
    optimizer, scheduler = _optimizer(params, config.stage_config(stage))
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and ctx.device.type == "cuda" else None
    objective = _wrap(StageObjective(model, stage, make_loss_fn(model, stage, config, descriptions)), ctx)
    parts = StageParts(stage, model, optimizer, scheduler, scaler, batches, ctx, objective, precision)
    engine = Engine(_step_fn(parts))

    @engine.on(Events.EPOCH_STARTED)
    def _position_batches(eng: Engine) -> None:
        model.train()
        done_in_epoch = eng.state.iteration % eng.state.epoch_length  # > 0 only when resuming
        batches.start_epoch(eng.state.epoch - 1, skip_batches=done_in_epoch)

    return engine, parts


def run_stage_engine(engine: Engine, parts: StageParts, epochs: int, resume: dict | None = None) -> bool:
    """Run (or resume) the engine for ``epochs`` epochs; True when the stage finished."""
    epoch_length = len(parts.batches)
    if resume is not None:
        engine.load_state_dict(
            {"iteration": int(resume["iteration"]), "epoch_length": epoch_length, "max_epochs": epochs}
        )
        logger.info("Stage %d resumes at iteration %d of %d", parts.stage, resume["iteration"], epochs * epoch_length)
    if epochs == 0 or (resume is not None and int(resume["iteration"]) >= epochs * epoch_length):
        return True
    engine.run(data=None, max_epochs=epochs, epoch_length=epoch_length)
    return engine.state.iteration >= epochs * epoch_length
