"""TensorBoard scalars (losses, learning rate, validation AUROC); optional."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ignite.engine import Engine, Events

__all__ = ["TensorBoardLogger"]

logger = logging.getLogger(__name__)


class TensorBoardLogger:
    """Writes the step losses and ``metrics_fn()`` (per epoch) under ``log_dir``.

    Args:
        log_dir: event file folder (e.g. OUT/tensorboard).
        stage: stage number, used as tag prefix.
        metrics_fn: returns the latest validation metrics (may be empty).
    """

    def __init__(self, log_dir: str | Path, stage: int, metrics_fn: Callable[[], dict] | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # optional: training goes on without it
            msg = f"TensorBoard logging needs the tensorboard package (pip install tensorboard): {err}"
            raise ImportError(msg) from err
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.stage, self.metrics_fn = stage, metrics_fn

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.log_epoch)
        engine.add_event_handler(Events.COMPLETED, lambda _: self.writer.flush())

    def __call__(self, engine: Engine) -> None:
        for name, value in engine.state.output.items():
            self.writer.add_scalar(f"stage{self.stage}/{name}", float(value), engine.state.iteration)

    def log_epoch(self, engine: Engine) -> None:
        for name, value in (self.metrics_fn() if self.metrics_fn else {}).items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"stage{self.stage}/val_{name}", float(value), engine.state.epoch)
        self.writer.flush()
