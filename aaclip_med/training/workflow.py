"""The two-stage training run: outputs, resume, validation, handlers; the library entry point.

Outputs below ``config.out_dir`` (rank 0 writes, all atomically except the append-only logs)::

    train_config.json          what the work in this folder was done with (config, network, data)
    train_state.pt             resumable state (stage, epoch, iteration, optimizer, scheduler, RNG, weights)
    log.jsonl                  one line per iteration (losses, lr) and per validation
    tensorboard/stage1, tensorboard/stage2   event files (when tensorboard imports)
    stage1/last.safetensors    adapters after the latest Stage-1 epoch (+ .json)
    stage1/best.safetensors    best Stage-1 epoch on the validation split (only with validation data)
    stage2/last.safetensors, stage2/best.safetensors   the same for Stage 2
    adapters.safetensors       the final adapters (+ .json): best on validation if given, else last
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from aaclip_med.distributed import DistContext, barrier, broadcast_parameters, init_distributed
from aaclip_med.files import append_json_line, remove_stale_temporaries, write_json_atomic
from aaclip_med.model import AAClip, save_adapters
from aaclip_med.precision import resolve_precision
from aaclip_med.training.batches import EpochBatches, SeededSamples
from aaclip_med.training.config import TrainConfig
from aaclip_med.training.engine import build_stage_trainer, run_stage_engine
from aaclip_med.training.handlers import (
    BestEpochSelector,
    LossLogger,
    StopAfterIterations,
    attach_state_checkpoint,
)
from aaclip_med.training.objectives import describe_classes, fixed_anchor_table, stack_anchors
from aaclip_med.training.record import (
    FINAL_ADAPTERS,
    RECORD_FILE,
    STATE_FILE,
    carried_stages,
    check_stage2_start,
    check_trainable,
    clear_outputs,
    differences,
    merge_record,
    read_record,
    stage_done,
    summarize_data,
    touched_stages,
)
from aaclip_med.training.state import StageState, cpu_adapters, load_train_state, save_train_state
from aaclip_med.training.validate import validate

__all__ = ["TrainResult", "run_training", "STATE_FILE", "FINAL_ADAPTERS"]

logger = logging.getLogger(__name__)



@dataclass
class TrainResult:
    """What a run produced."""

    out_dir: Path
    completed: bool  # False when stopped early (stop_after_iterations); re-run to resume
    adapters: Path | None  # OUT/adapters.safetensors once every stage finished
    best: dict[int, dict] = field(default_factory=dict)  # stage -> {"metric", "epoch"} on validation


@dataclass
class _StageContext:
    """Everything :func:`_run_stage` needs besides the stage number."""

    model: AAClip
    config: TrainConfig  # precision resolved
    ctx: DistContext
    out: Path
    samples: Callable[[int], SeededSamples]
    descriptions: dict[str, str]
    val_data: Sequence[dict] | None
    trained: set[int]  # stages the adapters carry trained (from --weights or finished here)
    best: dict[int, dict] = field(default_factory=dict)
    best_states: dict[int, dict] = field(default_factory=dict)

    def adapter_extra(self, stage: int, **values: Any) -> dict[str, Any]:
        return {"stage": stage, "trained_stages": sorted(self.trained | {stage}), **values}


def _anchor_fn(sc: _StageContext, stage: int) -> Callable[[list[str]], torch.Tensor]:
    """Validation anchors: the current text encoder (Stage 1) or the fixed table (Stage 2)."""
    if stage == 1:
        return lambda names: stack_anchors({d: sc.model.text_anchors(d) for d in set(sc.descriptions.values())},
                                           [sc.descriptions[n] for n in names])
    table = fixed_anchor_table(sc.model, list(sc.descriptions.values()))
    return lambda names: stack_anchors(table, [sc.descriptions[n] for n in names])


def _attach_validation(sc: _StageContext, engine: Engine, stage: int) -> BestEpochSelector:
    anchors_for = _anchor_fn(sc, stage)

    def evaluate() -> dict:
        metrics = validate(sc.model, sc.val_data, anchors_for, sc.config.domain, sc.ctx.device, stage,
                           feature_chunk=sc.config.stage1_feature_chunk, precision=sc.config.precision)
        append_json_line(sc.out / "log.jsonl", {"stage": stage, "validation": metrics})
        return metrics

    def on_best(epoch: int, metrics: dict) -> None:
        sc.best_states[stage] = cpu_adapters(sc.model)
        save_adapters(sc.model, sc.out / f"stage{stage}" / "best.safetensors",
                      extra=sc.adapter_extra(stage, epoch=epoch, validation=metrics))

    handler = BestEpochSelector(evaluate, on_best, sc.best[stage])
    handler.attach(engine)
    return handler


def _attach_tensorboard(engine: Engine, log_dir: Path) -> None:
    """MONAI's TensorBoard handler: step losses and lr per iteration, validation metrics per epoch."""
    from monai.handlers import TensorBoardStatsHandler

    try:
        handler = TensorBoardStatsHandler(log_dir=str(log_dir), output_transform=lambda output: output)
    except ImportError as err:  # optional: training goes on without it
        logger.warning("TensorBoard logging needs the tensorboard package (%s); continuing without it.", err)
        return
    handler.attach(engine)
    engine.add_event_handler(Events.COMPLETED | Events.TERMINATE, lambda _: handler.close())


def _attach_handlers(sc: _StageContext, engine: Engine, state: StageState) -> None:
    """Rank 0: loss log, validation, adapters per epoch, state checkpoints, TensorBoard, progress."""
    stage, config = state.parts.stage, sc.config
    if sc.ctx.is_main:
        LossLogger(sc.out / "log.jsonl", stage).attach(engine)
        if sc.val_data is not None:
            _attach_validation(sc, engine, stage)
        engine.add_event_handler(
            Events.EPOCH_COMPLETED,
            lambda e: save_adapters(sc.model, sc.out / f"stage{stage}" / "last.safetensors",
                                    extra=sc.adapter_extra(stage, epoch=e.state.epoch, iteration=e.state.iteration)),
        )
        attach_state_checkpoint(engine, state, sc.out / STATE_FILE, config.save_every)
        if config.tensorboard:
            _attach_tensorboard(engine, sc.out / "tensorboard" / f"stage{stage}")
        if config.progress:
            from ignite.handlers import ProgressBar

            # disable=None: tqdm draws only on a terminal, as inference's bars (a log file gets no \r lines)
            ProgressBar(persist=False, desc=f"stage {stage}", disable=None).attach(
                engine, output_transform=lambda o: {"loss": o["loss"]})
    if config.stop_after_iterations:
        StopAfterIterations(config.stop_after_iterations).attach(engine)


def _all_adapter_params(model: AAClip) -> list[torch.nn.Parameter]:
    return [p for module in model.trainable_modules().values() for p in module.parameters()]


def _finish_stage(sc: _StageContext, state: StageState) -> None:
    """Keep the stage's best weights (validation) or its last ones, and mark the stage done."""
    stage = state.parts.stage
    if sc.best_states.get(stage) is not None:
        sc.model.load_adapter_state_dict({k: v.to(sc.ctx.device) for k, v in sc.best_states[stage].items()})
        logger.info("Stage %d keeps epoch %s, best on validation", stage, sc.best[stage].get("epoch"))
    broadcast_parameters(_all_adapter_params(sc.model), sc.ctx)
    sc.trained.add(stage)
    if sc.ctx.is_main:
        save_train_state(state.state_dict(completed=True), sc.out / STATE_FILE)


def _run_stage(sc: _StageContext, stage: int, resume: dict | None) -> bool:
    """Train (or resume) one stage; True when it finished, False when stopped early."""
    cfg, config, ctx = sc.config.stage_config(stage), sc.config, sc.ctx
    if resume is not None:
        sc.model.load_adapter_state_dict({k: v.to(ctx.device) for k, v in resume["adapters"].items()})
    batches = EpochBatches(sc.samples(stage), cfg.batch_size, config.seed, ctx.rank, ctx.world_size,
                           shuffle=True, num_workers=config.num_workers,
                           case_window=config.case_window)
    broadcast_parameters(_all_adapter_params(sc.model), ctx)  # the other stage's modules too
    engine, parts = build_stage_trainer(sc.model, stage, config, batches, sc.descriptions, ctx, config.precision)
    sc.best.setdefault(stage, {"metric": None, "epoch": None})
    state = StageState(parts, cfg.epochs, sc.best[stage], sc.best_states, config.to_dict())
    state.engine = engine
    if resume is not None:
        state.load_state_dict(resume)
    _attach_handlers(sc, engine, state)
    done = run_stage_engine(engine, parts, cfg.epochs, resume)
    if done:
        _finish_stage(sc, state)
    barrier(ctx)
    return done


def _previous_state(out: Path, config: TrainConfig) -> dict | None:
    path = out / STATE_FILE
    if not config.resume or not path.is_file():
        return None
    state = load_train_state(path)
    logger.info("Resuming from %s: stage %d, iteration %d%s", path, state["stage"], state["iteration"],
                " (stage finished)" if state.get("completed") else "")
    return state


def _new_record(config: TrainConfig, descriptions: dict, model: AAClip, train: dict, val: dict | None) -> dict:
    network = {k: v for k, v in model.config.to_dict().items() if k != "descriptions"}
    config_dict = dataclasses.replace(config, descriptions=dict(descriptions)).to_dict()

    def data(summary: dict | None) -> dict | None:
        return None if summary is None else {k: v for k, v in summary.items() if k != "classes"}

    return {"config": config_dict, "network": network, "data": {"train": data(train), "validation": data(val)}}


def _check_folder(out: Path, config: TrainConfig, record: dict, previous: dict | None,
                  carried: set[int]) -> tuple[dict | None, set[int]]:
    """Refuse settings that differ from the work in ``out``; (previous record, stages with work)."""
    previous_record = read_record(out, previous) if config.resume else None
    recorded = (previous_record or {}).get("config", {}).get("stages", [])
    touched = touched_stages(recorded, previous)
    found = differences(previous_record, record, touched, config.stages) if previous_record else []
    if found:
        lines = "\n  ".join(found)
        msg = (f"{out} holds training work (stage(s) {sorted(touched)}) done with other settings, which would "
               f"change its outputs:\n  {lines}\nResume with the recorded settings (see {out / RECORD_FILE}), "
               "pass --force (TrainConfig.resume=False) to delete that work and start afresh, or choose another --out.")
        raise ValueError(msg)
    if 2 in config.stages and 1 not in config.stages:
        check_stage2_start(out, previous, carried)
    return previous_record, touched


def run_training(
    model: AAClip,
    config: TrainConfig,
    train_data: Sequence[dict],
    val_data: Sequence[dict] | None = None,
    train_transform: Callable[[int], Callable] | None = None,
) -> TrainResult:
    """Train AA-CLIP's adapters in two stages (spec 7, 8); resumes from ``OUT/train_state.pt``.

    Under ``torchrun`` every process calls this with the same arguments; batches are sharded,
    gradients averaged by DistributedDataParallel, and rank 0 writes the outputs.

    Args:
        model: the network (built with :func:`aaclip_med.model.build_aaclip` or loaded adapters).
        config: the run's settings; ``config.out_dir`` receives every output.
        train_data: samples with ``image`` (C, H, W), ``mask`` (1, H, W), ``label``, ``class_name``;
            already preprocessed to (3, S, S) unless ``train_transform`` does it. At least one
            sample must have an anomaly mask.
        val_data: optional preprocessed validation samples; the best epoch of each stage is chosen
            on them (never pass a test set here).
        train_transform: ``stage -> transform`` (random, with ``set_random_state``), applied per
            sample with a seed from (seed, epoch, index), e.g.
            :func:`aaclip_med.data.pipeline.training_transforms`. With ``config.synthetic`` the
            transform must plant the anomalies (``training_transforms(synthetic_kinds=...)``, as
            :func:`aaclip_med.training.data.manifest_training_data` builds it); the data may then
            be normal only.

    Returns:
        a :class:`TrainResult`.

    Raises:
        ValueError: data without any anomaly mask (and no ``config.synthetic``); Stage 2 alone without
            trained Stage-1 text adapters; or, when resuming, settings that differ from the work already in the folder.
    """
    config.validate()
    ctx = init_distributed(config.device)
    synthetic = config.synthetic.resolved(config.seed) if config.synthetic is not None else None
    config = dataclasses.replace(config, precision=resolve_precision(config.precision, ctx.device), synthetic=synthetic,
                                 image_logit_scale=config.image_scale())
    logger.info("Training precision: %s on %s", config.precision, ctx.device)
    out = Path(config.out_dir)
    train_summary = summarize_data(train_data)
    check_trainable(train_summary, synthetic=synthetic is not None)
    val_summary = summarize_data(val_data) if val_data is not None else None
    model.to(ctx.device)
    names = train_summary["classes"] + (val_summary["classes"] if val_summary else [])
    descriptions = describe_classes(names, config.descriptions, config.description_dataset)
    model.config.descriptions.update(descriptions)
    if not config.resume and ctx.is_main:
        clear_outputs(out)
    barrier(ctx)
    previous = _previous_state(out, config)
    carried = carried_stages(getattr(model, "checkpoint_extra", None))
    record = _new_record(config, descriptions, model, train_summary, val_summary)
    previous_record, touched = _check_folder(out, config, record, previous, carried)
    final = out / FINAL_ADAPTERS
    if previous is not None and all(stage_done(previous, s) for s in config.stages) and final.is_file():
        logger.info("Every requested stage is already finished in %s; nothing to do (adapters: %s)", out, final)
        return TrainResult(out, completed=True, adapters=final, best={})
    if ctx.is_main:
        if out.is_dir():
            remove_stale_temporaries(out)
        write_json_atomic(out / RECORD_FILE, merge_record(previous_record, record, touched), sort_keys=True)
    if previous is not None:
        if carried:
            logger.warning("Resuming in %s: the adapters of its training state replace those the network was "
                           "loaded with.", out)
        model.load_adapter_state_dict({k: v.to(ctx.device) for k, v in previous["adapters"].items()})
    trained = carried | {s for s in touched if stage_done(previous, s)}
    sc = _StageContext(model, config, ctx, out, lambda st: SeededSamples(
        train_data, train_transform(st) if train_transform else None, config.seed), descriptions, val_data, trained)
    for stage in sorted(config.stages):
        if stage_done(previous, stage):
            logger.info("Stage %d already finished in %s; skipped", stage, out)
            continue
        resume = previous if previous is not None and previous["stage"] == stage else None
        if not _run_stage(sc, stage, resume):
            return TrainResult(out, completed=False, adapters=None, best=sc.best)
    if ctx.is_main:
        save_adapters(model, final, extra={"stages": list(config.stages), "trained_stages": sorted(sc.trained),
                                           "seed": config.seed, "best": {str(k): v for k, v in sc.best.items()}})
    barrier(ctx)
    return TrainResult(out, completed=True, adapters=final, best=sc.best)
