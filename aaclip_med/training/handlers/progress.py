"""tqdm progress bar over the iterations of an epoch, showing the running loss."""

from __future__ import annotations

from ignite.engine import Engine
from ignite.handlers import ProgressBar

__all__ = ["attach_progress_bar"]


def attach_progress_bar(engine: Engine, stage: int) -> ProgressBar:
    """Attach Ignite's tqdm bar; the description names the stage."""
    bar = ProgressBar(persist=False, desc=f"stage {stage}")
    bar.attach(engine, output_transform=lambda out: {"loss": out["loss"]})
    return bar
