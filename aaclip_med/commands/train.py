"""``aaclip-med train``: two-stage AA-CLIP training on a manifest (spec sections 6-8).

Outputs in ``--out`` (see :mod:`aaclip_med.training.workflow`): ``adapters.safetensors`` (+ ``.json``)
to pass to ``aaclip-med infer --weights``, ``train_state.pt`` (re-run the same command to resume),
``train_config.json``, ``log.jsonl``, ``tensorboard/``, ``stage1/`` and ``stage2/`` (``last`` and,
with ``--val-manifest``, ``best`` adapters). Multi-GPU / multi-process:
``torchrun --nproc_per_node N -m aaclip_med.cli train ...`` (batch sizes are per process).
"""

from __future__ import annotations

import argparse
import logging

from aaclip_med.commands._common import add_model_arguments, descriptions_from_args, model_from_args

__all__ = ["add_arguments", "run", "config_from_args"]

logger = logging.getLogger(__name__)

_STAGES = {"1": (1,), "2": (2,), "both": (1, 2)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--manifest", required=True, help="training manifest (JSON lines)")
    data.add_argument("--dataset-root", required=True, help="folder the manifest paths are relative to")
    data.add_argument("--val-manifest", help="validation manifest: picks the best epoch (never use the test set)")
    data.add_argument("--val-root", help="root of the validation paths (default: --dataset-root)")
    data.add_argument("--shot", type=int, help="k-shot: k samples per class, half normal, half anomalous")
    data.add_argument("--modality", default="photo", help="preprocessing preset (photo, ct, mri, oct, endoscopy, ...)")
    data.add_argument("--descriptions", help="JSON file or inline JSON: class name -> description")
    data.add_argument("--description-dataset", help="description registry to use (mvtec, visa, medical, ...)")
    run_group = parser.add_argument_group("training")
    run_group.add_argument("--out", required=True, help="output folder (created; everything is written below it)")
    run_group.add_argument("--stage", choices=sorted(_STAGES), default="both", help="which stages to run")
    for stage, (epochs, lr, batch) in {1: (5, 1e-5, 16), 2: (20, 5e-4, 2)}.items():
        run_group.add_argument(f"--epochs-stage{stage}", type=int, default=epochs, help=f"default {epochs}")
        run_group.add_argument(f"--lr-stage{stage}", type=float, default=lr, help=f"default {lr}")
        run_group.add_argument(f"--batch-size-stage{stage}", type=int, default=batch,
                               help=f"per process, default {batch}")
    run_group.add_argument("--milestones", type=int, nargs="*", default=[16000, 32000],
                           help="Stage-2 MultiStepLR milestones in iterations (factor 0.5)")
    run_group.add_argument("--seed", type=int, default=0)
    run_group.add_argument("--gamma", type=float, default=0.1, help="weight of the disentangle loss")
    run_group.add_argument("--stage1-levels", choices=["all", "last"], default="all",
                           help="'last' reproduces the public code's last-level-only Stage-1 loss")
    run_group.add_argument("--domain", choices=["industrial", "medical"], help="validation scoring (default: preset)")
    run_group.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none", help="mixed precision (GPU)")
    run_group.add_argument("--grad-checkpointing", action="store_true", help="less memory, more compute")
    run_group.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    run_group.add_argument("--save-every", type=int, default=200, help="iterations between resumable states")
    run_group.add_argument("--stop-after", type=int, help="stop each stage after this many iterations (resumable)")
    run_group.add_argument("--no-resume", action="store_true", help="ignore an existing OUT/train_state.pt")
    run_group.add_argument("--no-tensorboard", action="store_true")
    run_group.add_argument("--no-progress", action="store_true")
    add_model_arguments(parser)


def _domain(args: argparse.Namespace) -> str:
    if args.domain:
        return args.domain
    from aaclip_med.data.modality import get_modality

    return str(get_modality(args.modality).get("domain", "industrial"))


def config_from_args(args: argparse.Namespace):
    """The :class:`TrainConfig` the flags describe."""
    from aaclip_med.training import StageConfig, TrainConfig

    def stage(n: int, milestones=()) -> StageConfig:
        return StageConfig(epochs=getattr(args, f"epochs_stage{n}"), lr=getattr(args, f"lr_stage{n}"),
                           batch_size=getattr(args, f"batch_size_stage{n}"), milestones=tuple(milestones))

    return TrainConfig(
        out_dir=args.out, stages=_STAGES[args.stage], stage1=stage(1), stage2=stage(2, args.milestones),
        seed=args.seed, gamma=args.gamma, stage1_levels=args.stage1_levels, domain=_domain(args),
        descriptions=descriptions_from_args(args.descriptions), description_dataset=args.description_dataset,
        device=args.device, amp=args.amp, grad_checkpointing=args.grad_checkpointing, num_workers=args.workers,
        save_every=args.save_every, stop_after_iterations=args.stop_after, resume=not args.no_resume,
        tensorboard=not args.no_tensorboard, progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from aaclip_med.training import run_training
    from aaclip_med.training.data import manifest_training_data

    config = config_from_args(args)
    torch.manual_seed(args.seed)  # the adapters' Xavier init: same command, same weights
    model = model_from_args(args, for_training=True)
    train, transform, val = manifest_training_data(
        args.manifest, args.dataset_root, model.config.image_size, modality=args.modality, shot=args.shot,
        seed=args.seed, val_manifest=args.val_manifest, val_root=args.val_root,
    )
    result = run_training(model, config, train, val_data=val, train_transform=transform)
    if not result.completed:
        logger.info("Stopped early; re-run the same command to resume from %s", result.out_dir)
        return 0
    logger.info("Adapters written to %s", result.adapters)
    return 0
