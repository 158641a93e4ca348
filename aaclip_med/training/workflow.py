"""The two-stage training run: outputs, resume, validation, handlers; the library entry point.

Outputs below ``config.out_dir`` (rank 0 writes, all atomically except the append-only logs)::

    train_config.json          the TrainConfig of the run
    train_state.pt             resumable state (stage, epoch, iteration, optimizer, scheduler, RNG, weights)
    log.jsonl                  one line per iteration (losses, lr) and per validation
    tensorboard/               event files (when tensorboard imports)
    stage1/last.safetensors    adapters after the latest Stage-1 epoch (+ .json)
    stage1/best.safetensors    best Stage-1 epoch on the validation split (only with validation data)
    stage2/last.safetensors, stage2/best.safetensors   the same for Stage 2
    adapters.safetensors       the final adapters (+ .json): best on validation if given, else last
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Events

from aaclip_med.distributed import DistContext, barrier, broadcast_parameters, init_distributed
from aaclip_med.files import write_json_atomic
from aaclip_med.keys import Keys
from aaclip_med.model import AAClip, save_adapters
from aaclip_med.training.batches import EpochBatches, SeededSamples
from aaclip_med.training.config import TrainConfig
from aaclip_med.training.engine import StageParts, build_stage_trainer, run_stage_engine
from aaclip_med.training.handlers import (
    LossLogger,
    StopAfterIterations,
    TensorBoardLogger,
    TrainStateCheckpoint,
    ValidationHandler,
    attach_progress_bar,
)
from aaclip_med.training.objectives import describe_classes, fixed_anchor_table, stack_anchors
from aaclip_med.training.state import (
    capture_rng,
    load_scheduler_state,
    load_train_state,
    restore_rng,
    scheduler_state,
)
from aaclip_med.training.validate import validate

__all__ = ["TrainResult", "run_training", "STATE_FILE", "FINAL_ADAPTERS"]

logger = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
FINAL_ADAPTERS = "adapters.safetensors"


@dataclass
class TrainResult:
    """What a run produced."""

    out_dir: Path
    completed: bool  # False when stopped early (stop_after_iterations); re-run to resume
    adapters: Path | None  # OUT/adapters.safetensors once every stage finished
    best: dict[int, dict] = field(default_factory=dict)  # stage -> {"metric", "epoch"} on validation


def _cpu_state(model: AAClip) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.adapter_state_dict().items()}


def _class_names(data: Sequence) -> list[str]:
    """Class names without loading images when the data is a MONAI Dataset over records."""
    records = getattr(data, "data", None)
    source = records if isinstance(records, Sequence) and records and isinstance(records[0], dict) else data
    return [str(item[Keys.CLASS_NAME]) for item in source]


@dataclass
class _StageContext:
    """Everything :func:`_run_stage` needs besides the stage number."""

    model: AAClip
    config: TrainConfig
    ctx: DistContext
    out: Path
    samples: Callable[[int], SeededSamples]
    descriptions: dict[str, str]
    val_data: Sequence[dict] | None
    best: dict[int, dict] = field(default_factory=dict)
    best_states: dict[int, dict] = field(default_factory=dict)


def _state_fn(sc: _StageContext, parts: StageParts, epochs: int) -> Callable:
    def build(engine, completed: bool = False) -> dict[str, Any]:
        stage = parts.stage
        return {
            "stage": stage, "iteration": engine.state.iteration, "epoch": engine.state.epoch,
            "epoch_length": len(parts.batches), "max_epochs": epochs, "completed": completed,
            "optimizer": parts.optimizer.state_dict(), "scheduler": scheduler_state(parts.scheduler),
            "scaler": parts.scaler.state_dict() if parts.scaler else None,
            "adapters": _cpu_state(sc.model), "best": dict(sc.best.get(stage, {})),
            "best_adapters": sc.best_states.get(stage), "rng": capture_rng(), "config": sc.config.to_dict(),
        }

    return build


def _anchor_fn(sc: _StageContext, stage: int) -> Callable[[list[str]], torch.Tensor]:
    """Validation anchors: the current text encoder (Stage 1) or the fixed table (Stage 2)."""
    if stage == 1:
        return lambda names: stack_anchors({d: sc.model.text_anchors(d) for d in set(sc.descriptions.values())},
                                           [sc.descriptions[n] for n in names])
    table = fixed_anchor_table(sc.model, list(sc.descriptions.values()))
    return lambda names: stack_anchors(table, [sc.descriptions[n] for n in names])


def _attach_validation(sc: _StageContext, engine, stage: int) -> ValidationHandler:
    sc.best.setdefault(stage, {"metric": None, "epoch": None})
    anchors_for = _anchor_fn(sc, stage)

    def evaluate() -> dict:
        metrics = validate(sc.model, sc.val_data, anchors_for, sc.config.domain, sc.ctx.device)
        _append_log(sc.out / "log.jsonl", {"stage": stage, "validation": metrics})
        return metrics

    def on_best(epoch: int, metrics: dict) -> None:
        sc.best_states[stage] = _cpu_state(sc.model)
        save_adapters(sc.model, sc.out / f"stage{stage}" / "best.safetensors",
                      extra={"stage": stage, "epoch": epoch, "validation": metrics})

    handler = ValidationHandler(evaluate, on_best, sc.best[stage])
    handler.attach(engine)
    return handler


def _append_log(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _attach_handlers(sc: _StageContext, engine, parts: StageParts, epochs: int) -> None:
    """Rank 0: loss log, validation, adapters per epoch, state checkpoints, TensorBoard, progress."""
    stage, config = parts.stage, sc.config
    if sc.ctx.is_main:
        LossLogger(sc.out / "log.jsonl", stage).attach(engine)
        val = _attach_validation(sc, engine, stage) if sc.val_data is not None else None
        engine.add_event_handler(
            Events.EPOCH_COMPLETED,
            lambda e: save_adapters(sc.model, sc.out / f"stage{stage}" / "last.safetensors",
                                    extra={"stage": stage, "epoch": e.state.epoch, "iteration": e.state.iteration}),
        )
        TrainStateCheckpoint(sc.out / STATE_FILE, _state_fn(sc, parts, epochs), config.save_every).attach(engine)
        if config.tensorboard:
            try:
                TensorBoardLogger(sc.out / "tensorboard", stage, lambda: val.latest if val else {}).attach(engine)
            except ImportError as err:
                logger.warning("%s; continuing without TensorBoard.", err)
        if config.progress:
            attach_progress_bar(engine, stage)
    if config.stop_after_iterations:
        StopAfterIterations(config.stop_after_iterations).attach(engine)


def _restore(sc: _StageContext, parts: StageParts, resume: dict) -> None:
    """Optimizer, scheduler, scaler, RNG and best-so-far of an interrupted stage."""
    parts.optimizer.load_state_dict(resume["optimizer"])
    load_scheduler_state(parts.scheduler, resume.get("scheduler"))
    if parts.scaler is not None and resume.get("scaler"):
        parts.scaler.load_state_dict(resume["scaler"])
    restore_rng(resume["rng"])
    sc.best.setdefault(parts.stage, {}).update(resume.get("best") or {"metric": None, "epoch": None})
    if resume.get("best_adapters"):
        sc.best_states[parts.stage] = resume["best_adapters"]


def _all_adapter_params(model: AAClip) -> list[torch.nn.Parameter]:
    return [p for module in model.trainable_modules().values() for p in module.parameters()]


def _finish_stage(sc: _StageContext, engine, parts: StageParts, epochs: int) -> None:
    """Keep the stage's best weights (validation) or its last ones, and mark the stage done."""
    stage = parts.stage
    if stage in sc.best_states and sc.best_states[stage] is not None:
        sc.model.load_adapter_state_dict({k: v.to(sc.ctx.device) for k, v in sc.best_states[stage].items()})
        logger.info("Stage %d keeps epoch %s, best on validation", stage, sc.best[stage].get("epoch"))
    broadcast_parameters(_all_adapter_params(sc.model), sc.ctx)
    if sc.ctx.is_main:
        from aaclip_med.training.state import save_train_state

        save_train_state(_state_fn(sc, parts, epochs)(engine, completed=True), sc.out / STATE_FILE)


def _run_stage(sc: _StageContext, stage: int, resume: dict | None) -> bool:
    """Train (or resume) one stage; True when it finished, False when stopped early."""
    cfg, config, ctx = sc.config.stage_config(stage), sc.config, sc.ctx
    if resume is not None:
        sc.model.load_adapter_state_dict({k: v.to(ctx.device) for k, v in resume["adapters"].items()})
    batches = EpochBatches(sc.samples(stage), cfg.batch_size, config.seed, ctx.rank, ctx.world_size,
                           shuffle=True, num_workers=config.num_workers)
    broadcast_parameters(_all_adapter_params(sc.model), ctx)
    engine, parts = build_stage_trainer(sc.model, stage, config, batches, sc.descriptions, ctx)
    if resume is not None:
        _restore(sc, parts, resume)
    _attach_handlers(sc, engine, parts, cfg.epochs)
    done = run_stage_engine(engine, parts, cfg.epochs, resume)
    if done:
        _finish_stage(sc, engine, parts, cfg.epochs)
    barrier(ctx)
    return done


def _stage_done(previous: dict, stage: int) -> bool:
    return previous["stage"] > stage or (previous["stage"] == stage and bool(previous.get("completed")))


def _previous_state(out: Path, config: TrainConfig) -> dict | None:
    path = out / STATE_FILE
    if not config.resume or not path.is_file():
        return None
    state = load_train_state(path)
    logger.info("Resuming from %s: stage %d, iteration %d%s", path, state["stage"], state["iteration"],
                " (stage finished)" if state.get("completed") else "")
    return state


def _write_config(out: Path, config: TrainConfig) -> None:
    write_json_atomic(out / "train_config.json", config.to_dict(), sort_keys=True)


def run_training(
    model: AAClip,
    config: TrainConfig,
    train_data: Sequence[dict],
    val_data: Sequence[dict] | None = None,
    train_transform: Callable[[int], Callable] | None = None,
) -> TrainResult:
    """Train AA-CLIP's adapters in two stages (spec 7, 8); resumes from ``OUT/train_state.pt``.

    Under ``torchrun`` every process calls this with the same arguments; batches are sharded,
    gradients averaged, and rank 0 writes the outputs.

    Args:
        model: the network (built with :func:`aaclip_med.model.build_aaclip` or loaded adapters).
        config: the run's settings; ``config.out_dir`` receives every output.
        train_data: samples with ``image`` (C, H, W), ``mask`` (1, H, W), ``label``, ``class_name``;
            already preprocessed to (3, S, S) unless ``train_transform`` does it.
        val_data: optional preprocessed validation samples; the best epoch of each stage is chosen
            on them (never pass a test set here).
        train_transform: ``stage -> transform`` (random, with ``set_random_state``), applied per
            sample with a seed from (seed, epoch, index), e.g.
            :func:`aaclip_med.data.pipeline.training_transforms`.

    Returns:
        a :class:`TrainResult`.
    """
    config.validate()
    ctx = init_distributed(config.device)
    out = Path(config.out_dir)
    model.to(ctx.device)
    names = _class_names(train_data) + (_class_names(val_data) if val_data is not None else [])
    descriptions = describe_classes(names, config.descriptions, config.description_dataset)
    model.config.descriptions.update(descriptions)
    if ctx.is_main:
        _write_config(out, config)
    previous = _previous_state(out, config)
    if previous is not None:
        model.load_adapter_state_dict({k: v.to(ctx.device) for k, v in previous["adapters"].items()})
    sc = _StageContext(model, config, ctx, out, lambda st: SeededSamples(
        train_data, train_transform(st) if train_transform else None, config.seed), descriptions, val_data)
    for stage in sorted(config.stages):
        if previous is not None and _stage_done(previous, stage):
            logger.info("Stage %d already finished in %s; skipped", stage, out)
            continue
        resume = previous if previous is not None and previous["stage"] == stage else None
        if not _run_stage(sc, stage, resume):
            return TrainResult(out, completed=False, adapters=None, best=sc.best)
    final = out / FINAL_ADAPTERS
    if ctx.is_main:
        save_adapters(model, final, extra={"stages": list(config.stages), "seed": config.seed,
                                           "best": {str(k): v for k, v in sc.best.items()}})
    barrier(ctx)
    return TrainResult(out, completed=True, adapters=final, best=sc.best)
