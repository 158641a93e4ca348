"""Small training configurations shared by the tests (tiny model, a few iterations)."""

from __future__ import annotations

from aaclip_med.training import StageConfig, TrainConfig
from tests.training._synthetic import DESCRIPTIONS


def tiny_config(out_dir, batch1: int = 4, batch2: int = 2, epochs: int = 2, **overrides) -> TrainConfig:
    """Both stages, 2 epochs each, lr high enough for the loss to move within a few steps."""
    values = dict(
        out_dir=str(out_dir),
        stage1=StageConfig(epochs=epochs, lr=1e-3, batch_size=batch1),
        stage2=StageConfig(epochs=epochs, lr=1e-3, batch_size=batch2, milestones=(5,)),
        descriptions=DESCRIPTIONS,
        progress=False,
        tensorboard=False,
        save_every=1,
        device="cpu",
        precision="fp32",  # the same numbers on every machine (auto may pick bf16)
    )
    values.update(overrides)
    return TrainConfig(**values)
