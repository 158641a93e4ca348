"""``aaclip-med train``: two-stage AA-CLIP training on a manifest (spec sections 6-8).

Outputs in ``--out`` (see :mod:`aaclip_med.training.workflow`): ``adapters.safetensors`` (+ ``.json``)
to pass to ``aaclip-med infer --weights``, ``train_state.pt`` (re-run the same command to resume),
``train_config.json``, ``log.jsonl``, ``tensorboard/``, ``stage1/`` and ``stage2/`` (``last`` and,
with ``--val-manifest``, ``best`` adapters). Multi-GPU / multi-process:
``torchrun --nproc_per_node N -m aaclip_med.cli train ...`` (batch sizes are per process).

Every default comes from :class:`aaclip_med.training.config.TrainConfig` (the paper's numbers are
written there once).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from aaclip_med.anomalies.kinds import SYNTHETIC_KINDS, parse_kinds
from aaclip_med.arguments import (
    add_model_arguments,
    check_model_arguments,
    descriptions_from_args,
    model_from_args,
)
from aaclip_med.files import check_output_folder
from aaclip_med.model.adapter_file import read_adapter_metadata
from aaclip_med.precision import PRECISIONS
from aaclip_med.training.config import (
    STAGE1_LEVELS,
    StageConfig,
    SyntheticConfig,
    TrainConfig,
    default_stage_config,
)

__all__ = ["add_arguments", "run", "config_from_args"]

logger = logging.getLogger(__name__)

_STAGES = {"1": (1,), "2": (2,), "both": (1, 2)}
_DEFAULTS = TrainConfig(out_dir="")


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--manifest", required=True,
                      help="training manifest (JSON lines); it must list anomalous samples with masks, unless "
                      "--synthetic-anomalies makes them from normal samples")
    data.add_argument("--dataset-root", required=True, help="folder the manifest paths are relative to")
    data.add_argument("--val-manifest", help="validation manifest: picks the best epoch of each stage "
                      "(never use the test set); without it the last epoch is kept")
    data.add_argument("--val-root", help="root of the validation paths; unset: --dataset-root")
    data.add_argument("--shot", type=int, help="k-shot: k samples per class, half normal, half anomalous; "
                      "unset: every sample")
    data.add_argument("--modality", default="auto", help="preprocessing preset of records without a 'modality' "
                      "field (auto, photo, ct, mri, oct, endoscopy, ...); auto decides per source as infer does")
    data.add_argument("--descriptions", help="JSON file or inline JSON: class name -> description")
    data.add_argument("--description-dataset", help="description registry to use (mvtec, visa, medical, ...); "
                      "unset: every registry")


def _synthetic_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("synthetic anomalies (normal-only training; see docs/site-adaptation.md)")
    synthetic = SyntheticConfig()
    group.add_argument("--synthetic-anomalies", metavar="KINDS",
                       help=f"comma-separated kinds from {','.join(SYNTHETIC_KINDS)}: each normal training sample "
                       "becomes anomalous (exact mask) with --synthetic-probability; a normal-only manifest is "
                       "then accepted. Unset: off")
    group.add_argument("--synthetic-probability", type=float, default=synthetic.probability,
                       help="probability that a normal training sample gets a synthetic anomaly (DRAEM's 0.5)")
    group.add_argument("--synthetic-validation", metavar="KIND", choices=SYNTHETIC_KINDS,
                       help="kind of the held-out validation anomalies; unset: the first of lesion, perlin, "
                       "cutpaste not used for training")
    group.add_argument("--synthetic-holdout", type=float, default=synthetic.holdout, metavar="FRACTION",
                       help="fraction of the normal cases held out for validation (0: none, the last epoch is "
                       "kept); ignored with --val-manifest, which validates on real labelled data")


def _stage_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("stages (defaults: the paper's settings)")
    group.add_argument("--stage", choices=sorted(_STAGES), default="both",
                       help="stages to run; '2' alone needs a finished Stage 1 in --out or --weights with one")
    for n in (1, 2):
        cfg = _DEFAULTS.stage_config(n)
        group.add_argument(f"--epochs-stage{n}", type=int, default=cfg.epochs, help=f"Stage-{n} epochs")
        normal_only = f", {default_stage_config(n, normal_only=True).lr:g} with --synthetic-anomalies"
        group.add_argument(f"--lr-stage{n}", type=float, default=None,
                           help=f"Stage-{n} Adam learning rate (default {cfg.lr:g}{normal_only})")
        group.add_argument(f"--batch-size-stage{n}", type=int, default=cfg.batch_size,
                           help=f"Stage-{n} batch size per process (global batch: times the number of processes)")
    group.add_argument("--milestones", type=int, nargs="*", default=list(_DEFAULTS.stage2.milestones),
                       help=f"Stage-2 MultiStepLR milestones in iterations (factor {_DEFAULTS.stage2.lr_factor})")
    group.add_argument("--disentangle-weight", type=float, default=_DEFAULTS.disentangle_weight,
                       help="weight of the Stage-1 disentangle loss (the paper's gamma)")
    group.add_argument("--stage1-levels", choices=STAGE1_LEVELS, default=_DEFAULTS.stage1_levels,
                       help="'last' reproduces the public code's last-level-only Stage-1 loss")


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("--out", required=True, help="output folder (created; everything is written below it)")
    group.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                       help="seed of the adapters' initialisation, data order, augmentation and k-shot draw")
    group.add_argument("--domain", choices=["industrial", "medical"],
                       help="smoothing and image-score rule of the validation maps; unset: the --modality preset's domain")
    group.add_argument("--precision", choices=PRECISIONS, default=_DEFAULTS.precision,
                       help="autocast precision; auto: bf16 where the device runs it natively, else fp32 "
                       "(weights and losses stay fp32)")
    group.add_argument("--grad-checkpointing", action="store_true",
                       help="recompute CLIP blocks in backward: less memory, more compute")
    group.add_argument("--workers", type=int, default=_DEFAULTS.num_workers, help="DataLoader worker processes")
    group.add_argument("--case-window", type=int, default=_DEFAULTS.case_window,
                       help="cases whose slices are shuffled together; each volume is decoded once per epoch")
    group.add_argument("--save-every", type=int, default=_DEFAULTS.save_every,
                       help="iterations between resumable states (also saved at each epoch end)")
    group.add_argument("--stop-after", type=int,
                       help="stop each stage after this many iterations; re-run to resume; unset: no stop")
    group.add_argument("--force", action="store_true",
                       help="delete the training outputs already in --out and start afresh; without it a re-run "
                       "resumes them and refuses settings that differ from the work done")
    group.add_argument("--no-tensorboard", action="store_true", help="do not write OUT/tensorboard event files")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _data_arguments(parser)
    _synthetic_arguments(parser)
    _stage_arguments(parser)
    _run_arguments(parser)
    add_model_arguments(parser)


def _domain(args: argparse.Namespace) -> str:
    """The validation maps' domain: --domain, else the explicit preset's, else the manifest records' own.

    It only decides how validation scores checkpoints (smoothing kernel, image-score rule); where
    nothing names it, the industrial rule is used and the warning says how to change it.
    """
    if args.domain:
        return args.domain
    if args.modality != "auto":
        from aaclip_med.presets import default_domain

        return default_domain(args.modality)
    manifest = Path(args.manifest)
    if manifest.is_file():
        from aaclip_med.data.manifest import read_manifest

        domains = {str(r.get("domain") or "") for r in read_manifest(manifest)}
        if len(domains) == 1 and "" not in domains:
            return domains.pop()
    logger.warning("%s names no single domain and --modality is auto: validation scores checkpoints with the "
                   "industrial rule; pass --domain medical for medical data", manifest)
    return "industrial"


def _synthetic(args: argparse.Namespace) -> SyntheticConfig | None:
    if not args.synthetic_anomalies:
        return None
    holdout = 0.0 if args.val_manifest else args.synthetic_holdout  # real labelled data validates instead
    synthetic = SyntheticConfig(kinds=parse_kinds(args.synthetic_anomalies), probability=args.synthetic_probability,
                                validation_kind=args.synthetic_validation, holdout=holdout)
    synthetic.validate()  # a bad value is refused before the network is built
    return synthetic


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` the flags describe."""

    def stage(n: int) -> StageConfig:
        defaults = default_stage_config(n, normal_only=bool(args.synthetic_anomalies))
        values = {"epochs": getattr(args, f"epochs_stage{n}"), "batch_size": getattr(args, f"batch_size_stage{n}")}
        if getattr(args, f"lr_stage{n}") is not None:
            values["lr"] = getattr(args, f"lr_stage{n}")
        if n == 2:
            values["milestones"] = tuple(args.milestones)
        return replace(defaults, **values)

    return TrainConfig(
        out_dir=args.out, stages=_STAGES[args.stage], stage1=stage(1), stage2=stage(2), seed=args.seed,
        disentangle_weight=args.disentangle_weight, stage1_levels=args.stage1_levels, domain=_domain(args),
        descriptions=descriptions_from_args(args.descriptions), description_dataset=args.description_dataset,
        device=args.device, precision=args.precision, grad_checkpointing=args.grad_checkpointing,
        num_workers=args.workers, case_window=args.case_window, save_every=args.save_every, stop_after_iterations=args.stop_after,
        resume=not args.force, tensorboard=not args.no_tensorboard, progress=not args.no_progress,
        synthetic=_synthetic(args),
    )


def _early_checks(args: argparse.Namespace, config: TrainConfig) -> None:
    """Refuse what can be refused before the network is built (tens of seconds for ViT-L).

    ``run_training`` checks the same again (it is also the Python and bundle entry point).
    """
    from aaclip_med.data.kshot import sample_k_shot
    from aaclip_med.data.manifest import read_manifest
    from aaclip_med.training.record import carried_stages, check_stage2_start, check_trainable, summarize_data
    from aaclip_med.training.state import load_train_state
    from aaclip_med.training.workflow import STATE_FILE

    config.validate()  # bad values (e.g. --case-window 0) before any file or network is read
    check_output_folder(config.out_dir)
    records = read_manifest(args.manifest)
    check_trainable(summarize_data(sample_k_shot(records, args.shot, seed=args.seed) if args.shot else records),
                    synthetic=config.synthetic is not None)
    if 1 in config.stages:
        return
    out = Path(config.out_dir)
    state = load_train_state(out / STATE_FILE) if config.resume and (out / STATE_FILE).is_file() else None
    carried = carried_stages(read_adapter_metadata(args.weights).get("extra")) if args.weights else set()
    check_stage2_start(out, state, carried)


def run(args: argparse.Namespace) -> int:
    check_model_arguments(args)  # sizes, backbones and weight files: refused before torch is imported
    import torch

    from aaclip_med.distributed import check_device
    from aaclip_med.training import run_training
    from aaclip_med.training.data import manifest_training_data

    config = config_from_args(args)
    _early_checks(args, config)
    torch.manual_seed(args.seed)  # the adapters' Xavier init: same command, same weights
    check_device(args.device)  # before the model loads, not after
    model = model_from_args(args, for_training=True)
    train, transform, val = manifest_training_data(
        args.manifest, args.dataset_root, model.config.image_size, modality=args.modality, shot=args.shot,
        seed=args.seed, val_manifest=args.val_manifest, val_root=args.val_root, synthetic=config.synthetic,
    )
    result = run_training(model, config, train, val_data=val, train_transform=transform)
    if not result.completed:
        logger.info("Stopped early; re-run the same command to resume from %s", result.out_dir)
        return 0
    logger.info("Adapters: %s", result.adapters)
    return 0
