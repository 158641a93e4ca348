"""Log the step losses: to the Python logger every N iterations and to a JSON-lines file."""

from __future__ import annotations

import logging
from pathlib import Path

from ignite.engine import Engine, Events

from aaclip_med.files import append_json_line

__all__ = ["LossLogger"]

logger = logging.getLogger(__name__)


class LossLogger:
    """Appends ``{"stage", "epoch", "iteration", <losses>, "lr"}`` per iteration to ``path``.

    The engine output must be a dict of floats (as the training step returns).

    Args:
        path: JSON-lines log file, or None for logging only.
        stage: stage number written in each record.
        log_every: iterations between INFO log lines.
    """

    def __init__(self, path: str | Path | None, stage: int, log_every: int = 50) -> None:
        self.path = None if path is None else Path(path)
        self.stage, self.log_every = stage, log_every

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        record = {"stage": self.stage, "epoch": engine.state.epoch, "iteration": engine.state.iteration}
        record.update({k: float(v) for k, v in engine.state.output.items()})
        if self.path is not None:
            append_json_line(self.path, record)
        if engine.state.iteration % self.log_every == 0:
            logger.info("stage %d epoch %d iteration %d: %s", self.stage, record["epoch"], record["iteration"],
                        ", ".join(f"{k} {v:.4f}" for k, v in engine.state.output.items()))
