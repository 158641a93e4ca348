"""Hyper-parameters of the two training stages (spec sections 6-8) as plain dataclasses.

The paper's numbers are written here once: :func:`default_stage_config` (epochs, learning rate,
batch size, milestones per stage), :class:`StageConfig` (Adam betas, MultiStepLR factor) and
:class:`TrainConfig` (disentangle weight). The CLI, the bundle and the Python API take their
defaults from here. The resolved config is written next to the outputs as JSON so a run can be
repeated and resumed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from aaclip_med.anomalies.kinds import DEFAULT_PROBABILITY, parse_kinds, unused_kind
from aaclip_med.precision import PRECISIONS

__all__ = ["StageConfig", "SyntheticConfig", "TrainConfig", "default_stage_config", "synthetic_settings",
           "STAGE1_LEVELS", "PAPER_IMAGE_LOGIT_SCALE", "NORMAL_ONLY_IMAGE_LOGIT_SCALE", "NORMAL_ONLY_STAGE1_LR",
           "NORMAL_ONLY_STAGE2_LR"]

STAGE1_LEVELS = ("all", "last")
# keys of train_config.json files written before the options were renamed
_RENAMED = {"gamma": "disentangle_weight"}
_DROPPED = ("amp",)


@dataclass
class StageConfig:
    """Optimiser and schedule of one stage."""

    epochs: int
    lr: float
    batch_size: int  # per process; the global batch is batch_size * world size
    betas: tuple[float, float] = (0.5, 0.999)  # spec 7/8: Adam betas of both stages
    milestones: tuple[int, ...] = ()  # MultiStepLR milestones in iterations (spec 8: Stage 2 only)
    lr_factor: float = 0.5  # spec 8: MultiStepLR factor

    def validate(self, name: str) -> None:
        """Raise ValueError naming the field when a value cannot work."""
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            msg = f"{name}: epochs must be >= 0, batch_size >= 1 and lr > 0, got {self}."
            raise ValueError(msg)


# Normal-only training (synthetic anomalies): Stage 1's learning rate. The paper's 1e-5 moves the
# text anchors over 5 epochs of VisA's 2162 images (about 675 Adam steps); a site's few hundred
# normal scans give a tenth of the steps or fewer, and the anchors do not move (disentangle term
# flat). Measured on the tiny network with 40 images (15 steps): 1e-5 leaves the Stage-1 loss flat,
# 1e-3 halves it (docs/training.md).
NORMAL_ONLY_STAGE1_LR = 1e-3
# Normal-only training: Stage 2's learning rate. The paper's 5e-4 runs for about 21600 steps (20
# epochs of VisA at batch 2); 40 normal images give 400. Measured on the tiny network (issue 34):
# at 5e-4 the maps did not fit even the training samples in 600 steps (pixel AUROC within each
# planted training image 0.50); at 2e-3 they separate cut-paste regions on unseen images
# (pixel AUROC 0.60 after 160 steps, zero-shot 0.53) (docs/training.md).
NORMAL_ONLY_STAGE2_LR = 2e-3


def default_stage_config(stage: int, normal_only: bool = False, **overrides: Any) -> StageConfig:
    """The paper's settings of ``stage`` (spec 7, 8), with ``overrides`` replacing fields.

    Stage 1: 5 epochs, lr 1e-5, batch 16, no scheduler. Stage 2: 20 epochs, lr 5e-4, batch 2,
    MultiStepLR at 16000 and 32000 iterations. Both: Adam betas (0.5, 0.999). ``normal_only``:
    the defaults of a run with synthetic anomalies, the same except the learning rates
    (:data:`NORMAL_ONLY_STAGE1_LR`, :data:`NORMAL_ONLY_STAGE2_LR`).
    """
    if stage == 1:
        config = StageConfig(epochs=5, lr=NORMAL_ONLY_STAGE1_LR if normal_only else 1e-5, batch_size=16)
    elif stage == 2:
        config = StageConfig(epochs=20, lr=NORMAL_ONLY_STAGE2_LR if normal_only else 5e-4, batch_size=2,
                             milestones=(16000, 32000))
    else:
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    if "betas" in overrides:
        overrides["betas"] = tuple(overrides["betas"])
    if "milestones" in overrides:
        overrides["milestones"] = tuple(int(m) for m in overrides["milestones"])
    return dataclasses.replace(config, **overrides)


@dataclass
class SyntheticConfig:
    """Normal-only training: synthetic anomalies for training, and a validation they cannot game.

    Training samples are seeded per (TrainConfig.seed, epoch, sample index). Validation (when no
    real validation data is given) holds out ``holdout`` of the normal cases and plants anomalies
    of ``validation_kind`` in every second one, seeded from ``validation_seed``: a kind training
    did not use, so choosing the best epoch rewards detecting anomalies, not the generator.
    """

    kinds: tuple[str, ...] = ("perlin", "cutpaste")  # perlin | cutpaste | lesion (aaclip_med.anomalies)
    probability: float = DEFAULT_PROBABILITY  # chance that a normal training sample becomes anomalous
    validation_kind: str | None = None  # None: the first of lesion, perlin, cutpaste not in kinds
    holdout: float = 0.1  # fraction of normal cases held out for validation; 0: none (last epoch kept)
    validation_seed: int | None = None  # None: TrainConfig.seed + VALIDATION_SEED_OFFSET

    def validate(self) -> None:
        """Raise ValueError naming the field when a value cannot work."""
        self.kinds = parse_kinds(self.kinds)
        if self.validation_kind is not None:
            parse_kinds([self.validation_kind])
        if not 0.0 < self.probability <= 1.0:
            raise ValueError(f"synthetic probability must be in (0, 1], got {self.probability}.")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"synthetic holdout must be a fraction in [0, 1), got {self.holdout}.")

    def resolved(self, seed: int) -> SyntheticConfig:
        """A copy with the validation kind and seed filled in (what ``train_config.json`` records)."""
        self.validate()
        kind = self.validation_kind or unused_kind(self.kinds) or self.kinds[0]
        vseed = self.validation_seed if self.validation_seed is not None else seed + VALIDATION_SEED_OFFSET
        return dataclasses.replace(self, validation_kind=kind, validation_seed=int(vseed))


VALIDATION_SEED_OFFSET = 1_000_003  # validation anomalies never share a seed with training ones

# Stage 2's image-level cross-entropy on det @ T. The paper uses the raw cosines (spec 6: no
# temperature): both logits lie in [-1, 1] and differ by at most |T_A - T_N|, so the loss cannot
# leave ln 2 by much. Normal-only training scales them by CLIP's logit scale, the factor the
# package's patch logits already carry (100 * f @ T), so the image head can learn.
PAPER_IMAGE_LOGIT_SCALE = 1.0
NORMAL_ONLY_IMAGE_LOGIT_SCALE = 100.0


def synthetic_settings(kinds: str | list[str] | tuple[str, ...] | None, probability: float = DEFAULT_PROBABILITY,
                       holdout: float = 0.0, validation_kind: str | None = None) -> SyntheticConfig | None:
    """A :class:`SyntheticConfig`, or None when ``kinds`` is empty (the bundle's off switch).

    ``holdout`` defaults to 0 here: callers that pass their own data (the bundle, the Python API)
    choose their validation set themselves.
    """
    if not kinds:
        return None
    config = SyntheticConfig(parse_kinds(kinds), probability, validation_kind, holdout)
    config.validate()
    return config


@dataclass
class TrainConfig:
    """Everything a training run needs besides the network and the data."""

    out_dir: str  # every output goes below this folder
    stages: tuple[int, ...] = (1, 2)  # (1,), (2,) or (1, 2)
    stage1: StageConfig = field(default_factory=lambda: default_stage_config(1))
    stage2: StageConfig = field(default_factory=lambda: default_stage_config(2))
    seed: int = 0  # data order, augmentation, RNG states
    case_window: int = 2  # cases whose slices are shuffled together (training/batches.py); each is read once per epoch
    disentangle_weight: float = 0.1  # spec 6: weight (gamma) of the disentangle loss in Stage 1
    stage1_levels: str = "all"  # "all": loss summed over levels; "last": public code's last level only
    domain: str = "industrial"  # smoothing and image-score rule used for validation maps
    descriptions: dict[str, str] = field(default_factory=dict)  # class name -> description overrides
    description_dataset: str | None = None  # registry to look class names up in (None: all)
    device: str | None = None  # None: cuda:<local rank> when available, else cpu
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (aaclip_med.precision); the record holds the resolved one
    grad_checkpointing: bool = False  # recompute CLIP blocks in backward (less memory)
    stage1_feature_chunk: int | None = 2  # images per frozen Stage-1 image forward (memory bound; None: whole batch)
    num_workers: int = 0  # DataLoader workers
    save_every: int = 200  # iterations between resumable states (also saved every epoch)
    stop_after_iterations: int | None = None  # stop (resumably) after this many iterations of a stage
    resume: bool = True  # continue from OUT/train_state.pt; False deletes the training outputs in OUT first
    tensorboard: bool = True  # write OUT/tensorboard/stage<n> when the tensorboard package imports
    progress: bool = True  # tqdm progress bar (rank 0)
    synthetic: SyntheticConfig | None = None  # normal-only training with synthetic anomalies (None: off)
    # factor on det @ T before the Stage-2 cross-entropy. None: 1 (spec 6, the paper: no temperature),
    # with synthetic anomalies NORMAL_ONLY_IMAGE_LOGIT_SCALE (docs/training.md)
    image_logit_scale: float | None = None

    def stage_config(self, stage: int) -> StageConfig:
        return self.stage1 if stage == 1 else self.stage2

    def image_scale(self) -> float:
        """The factor on ``det @ T`` this run trains with (``image_logit_scale`` resolved)."""
        if self.image_logit_scale is not None:
            return float(self.image_logit_scale)
        return NORMAL_ONLY_IMAGE_LOGIT_SCALE if self.synthetic is not None else PAPER_IMAGE_LOGIT_SCALE

    def validate(self) -> None:
        """Check the values users can get wrong; errors name the field and the choices."""
        if not self.stages or any(s not in (1, 2) for s in self.stages):
            raise ValueError(f"stages must be a non-empty subset of (1, 2), got {self.stages!r}.")
        if self.stage1_levels not in STAGE1_LEVELS:
            raise ValueError(f"stage1_levels must be one of {STAGE1_LEVELS}, got {self.stage1_levels!r}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}.")
        if self.disentangle_weight < 0:
            raise ValueError(f"disentangle_weight must be >= 0, got {self.disentangle_weight}.")
        if self.stage1_feature_chunk is not None and self.stage1_feature_chunk < 1:
            raise ValueError(f"stage1_feature_chunk must be >= 1 image or None, got {self.stage1_feature_chunk}.")
        if self.case_window < 1:
            raise ValueError(f"case_window must be >= 1 case, got {self.case_window}.")
        if self.save_every < 1:
            raise ValueError(f"save_every must be >= 1 iteration, got {self.save_every}.")
        self.stage1.validate("stage1")
        self.stage2.validate("stage2")
        if self.image_logit_scale is not None and not self.image_logit_scale > 0:
            raise ValueError(f"image_logit_scale must be > 0 (or None for the default), got {self.image_logit_scale}.")
        if self.synthetic is not None:
            self.synthetic.validate()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy (tuples become lists)."""
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error so typos do not pass silently."""
        values = {_RENAMED.get(k, k): v for k, v in data.items() if k not in _DROPPED}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown training config keys {unknown}; valid keys are {sorted(known)}.")
        for name in ("stage1", "stage2"):
            if isinstance(values.get(name), dict):
                stage = dict(values[name])
                for key in ("betas", "milestones"):
                    if key in stage:
                        stage[key] = tuple(stage[key])
                values[name] = StageConfig(**stage)
        if "stages" in values:
            values["stages"] = tuple(int(s) for s in values["stages"])
        if isinstance(values.get("synthetic"), dict):
            synthetic = dict(values["synthetic"])
            synthetic["kinds"] = tuple(synthetic.get("kinds", ()))
            values["synthetic"] = SyntheticConfig(**synthetic)
        return cls(**values)


def json_ready(value: Any) -> Any:
    """Tuples to lists, recursively, for JSON."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
