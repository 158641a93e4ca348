"""One training stage as an Ignite engine: the iteration step, optimiser, schedule and precision.

The engine runs without a data loader (``data=None``, fixed ``epoch_length``): the step pulls its
batch from :class:`EpochBatches`, which an ``EPOCH_STARTED`` handler positions from the engine's
iteration counter. That makes mid-epoch resume exact (Ignite alone would restart the epoch's data).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from torch import nn

from aaclip_med.distributed import DistContext
from aaclip_med.keys import Keys
from aaclip_med.model import AAClip
from aaclip_med.training.batches import EpochBatches
from aaclip_med.training.config import StageConfig, TrainConfig
from aaclip_med.training.freeze import freeze_for_stage
from aaclip_med.training.objectives import stack_anchors, stage1_losses, stage2_losses

__all__ = ["StageParts", "build_stage_trainer", "make_loss_fn", "autocast_context"]

logger = logging.getLogger(__name__)


@dataclass
class StageParts:
    """What a stage's engine works with; handlers and checkpoints read it."""

    stage: int
    model: AAClip
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: Any  # torch.amp.GradScaler for fp16, else None
    batches: EpochBatches
    ctx: DistContext


def autocast_context(amp: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of autocast contexts (bf16/fp16 on CUDA); a no-op on CPU or with ``amp='none'``."""
    if amp == "none":
        return contextlib.nullcontext
    if device.type != "cuda":
        logger.warning("Mixed precision %s requested on %s: ignored, training in float32.", amp, device)
        return contextlib.nullcontext
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast(device_type="cuda", dtype=dtype)


def make_loss_fn(
    model: AAClip, stage: int, config: TrainConfig, descriptions: Mapping[str, str]
) -> Callable[[dict], dict[str, torch.Tensor]]:
    """``batch -> losses`` of ``stage``; Stage 2 computes its fixed anchors once, here."""
    if stage == 1:
        def stage1(batch: dict) -> dict[str, torch.Tensor]:
            descs = [descriptions[c] for c in batch[Keys.CLASS_NAME]]
            return stage1_losses(model, batch, descs, config.gamma, config.stage1_levels, config.stage1_feature_chunk)

        return stage1
    from aaclip_med.training.objectives import fixed_anchor_table

    table = fixed_anchor_table(model, list(descriptions.values()))
    logger.info("Stage 2 anchors fixed from the Stage-1 text encoder for %d description(s)", len(table))

    def stage2(batch: dict) -> dict[str, torch.Tensor]:
        anchors = stack_anchors(table, [descriptions[c] for c in batch[Keys.CLASS_NAME]])
        return stage2_losses(model, batch, anchors)

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


def _step_fn(parts: StageParts, loss_fn: Callable, autocast: Callable) -> Callable[[Engine, Any], dict]:
    """The iteration: forward under autocast, backward, gradient all-reduce, step, schedule."""
    optimizer, scaler = parts.optimizer, parts.scaler

    def step(engine: Engine, _unused: Any) -> dict[str, float]:
        batch = _to_device(parts.batches.next(), parts.ctx.device)
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            losses = loss_fn(batch)
        lr = optimizer.param_groups[0]["lr"]  # the rate this step uses (logged before scheduling)
        (scaler.scale(losses["loss"]) if scaler else losses["loss"]).backward()
        all_reduce_gradients(parts.params, parts.ctx)
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
) -> tuple[Engine, StageParts]:
    """An Ignite engine that trains ``stage`` of AA-CLIP; run it with ``run_stage_engine``.

    Args:
        model: the network, already on ``ctx.device``.
        stage: 1 (text adapters + projection) or 2 (image adapters + heads).
        config: the run's settings (``config.stage_config(stage)`` for the optimiser).
        batches: this process's batches.
        descriptions: class name -> description, for every class of the data.
        ctx: distributed context.

    Returns:
        (engine, parts); the engine's output per iteration is a dict of floats (losses, lr).
    """
    model.set_grad_checkpointing(config.grad_checkpointing)
    params = freeze_for_stage(model, stage)
    optimizer, scheduler = _optimizer(params, config.stage_config(stage))
    use_scaler = config.amp == "fp16" and ctx.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    parts = StageParts(stage, model, params, optimizer, scheduler, scaler, batches, ctx)
    loss_fn = make_loss_fn(model, stage, config, descriptions)
    engine = Engine(_step_fn(parts, loss_fn, autocast_context(config.amp, ctx.device)))

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
