"""Save the resumable training state every N iterations and at the end of every epoch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from aaclip_med.training.state import save_train_state

__all__ = ["TrainStateCheckpoint"]

logger = logging.getLogger(__name__)


class TrainStateCheckpoint:
    """Writes ``state_fn(engine)`` to ``path`` atomically.

    Args:
        path: the state file (e.g. OUT/train_state.pt).
        state_fn: builds the state dictionary from the engine (weights, optimizer, RNG, ...).
        every: iterations between saves; a save also happens at each epoch end.
    """

    def __init__(self, path: str | Path, state_fn: Callable[[Engine], dict[str, Any]], every: int) -> None:
        self.path, self.state_fn, self.every = Path(path), state_fn, every

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.every), self)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        # at an epoch end this may rewrite the iteration's state: validation may have found a new best
        save_train_state(self.state_fn(engine), self.path)
        logger.debug("Saved training state at iteration %d to %s", engine.state.iteration, self.path)
