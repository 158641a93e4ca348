"""Hyper-parameters of the two training stages (spec sections 7 and 8) as plain dataclasses.

Defaults are the paper's; every field can be overridden (CLI flags, bundle configs, Python).
The config is written next to the outputs as JSON so a run can be repeated and resumed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StageConfig", "TrainConfig", "default_stage_config"]

AMP_MODES = ("none", "bf16", "fp16")
STAGE1_LEVELS = ("all", "last")


@dataclass
class StageConfig:
    """Optimiser and schedule of one stage."""

    epochs: int
    lr: float
    batch_size: int  # per process; the global batch is batch_size * world size
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas of the public code
    milestones: tuple[int, ...] = ()  # MultiStepLR milestones in iterations (Stage 2: 16000, 32000)
    lr_factor: float = 0.5  # MultiStepLR gamma

    def validate(self, name: str) -> None:
        """Raise ValueError naming the field when a value cannot work."""
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            msg = f"{name}: epochs must be >= 0, batch_size >= 1 and lr > 0, got {self}."
            raise ValueError(msg)


def default_stage_config(stage: int) -> StageConfig:
    """The paper's settings: Stage 1 5 epochs, lr 1e-5, batch 16; Stage 2 20 epochs, lr 5e-4, batch 2."""
    if stage == 1:
        return StageConfig(epochs=5, lr=1e-5, batch_size=16)
    if stage == 2:
        return StageConfig(epochs=20, lr=5e-4, batch_size=2, milestones=(16000, 32000))
    raise ValueError(f"stage must be 1 or 2, got {stage!r}")


@dataclass
class TrainConfig:
    """Everything a training run needs besides the network and the data."""

    out_dir: str  # every output goes below this folder
    stages: tuple[int, ...] = (1, 2)  # (1,), (2,) or (1, 2)
    stage1: StageConfig = field(default_factory=lambda: default_stage_config(1))
    stage2: StageConfig = field(default_factory=lambda: default_stage_config(2))
    seed: int = 0  # data order, augmentation, RNG states
    gamma: float = 0.1  # weight of the disentangle loss in Stage 1
    stage1_levels: str = "all"  # "all": loss summed over levels; "last": public code's last level only
    domain: str = "industrial"  # smoothing and image-score rule used for validation maps
    descriptions: dict[str, str] = field(default_factory=dict)  # class name -> description overrides
    description_dataset: str | None = None  # registry to look class names up in (None: all)
    device: str | None = None  # None: cuda:<local rank> when available, else cpu
    amp: str = "none"  # "none" | "bf16" | "fp16" (GPU only; fp16 uses a GradScaler)
    grad_checkpointing: bool = False  # recompute CLIP blocks in backward (less memory)
    stage1_feature_chunk: int | None = 2  # images per frozen Stage-1 image forward (memory bound; None: whole batch)
    num_workers: int = 0  # DataLoader workers
    save_every: int = 200  # iterations between resumable states (also saved every epoch)
    stop_after_iterations: int | None = None  # stop (resumably) after this many iterations of a stage
    resume: bool = True  # continue from OUT/train_state.pt when it exists
    tensorboard: bool = True  # write OUT/tensorboard when the tensorboard package imports
    progress: bool = True  # tqdm progress bar (rank 0)

    def stage_config(self, stage: int) -> StageConfig:
        return self.stage1 if stage == 1 else self.stage2

    def validate(self) -> None:
        """Check the values users can get wrong; errors name the field and the choices."""
        if not self.stages or any(s not in (1, 2) for s in self.stages):
            raise ValueError(f"stages must be a non-empty subset of (1, 2), got {self.stages!r}.")
        if self.stage1_levels not in STAGE1_LEVELS:
            raise ValueError(f"stage1_levels must be one of {STAGE1_LEVELS}, got {self.stage1_levels!r}.")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}.")
        if self.stage1_feature_chunk is not None and self.stage1_feature_chunk < 1:
            raise ValueError(f"stage1_feature_chunk must be >= 1 image or None, got {self.stage1_feature_chunk}.")
        if self.save_every < 1:
            raise ValueError(f"save_every must be >= 1 iteration, got {self.save_every}.")
        self.stage1.validate("stage1")
        self.stage2.validate("stage2")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy (tuples become lists)."""
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error so typos do not pass silently."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown training config keys {unknown}; valid keys are {sorted(known)}.")
        values = dict(data)
        for name in ("stage1", "stage2"):
            if isinstance(values.get(name), dict):
                stage = dict(values[name])
                stage["betas"] = tuple(stage.get("betas", (0.5, 0.999)))
                stage["milestones"] = tuple(stage.get("milestones", ()))
                values[name] = StageConfig(**stage)
        if "stages" in values:
            values["stages"] = tuple(int(s) for s in values["stages"])
        return cls(**values)


def json_ready(value: Any) -> Any:
    """Tuples to lists, recursively, for JSON."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
