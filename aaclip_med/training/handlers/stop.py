"""Stop a stage after a number of iterations, resumably (smoke runs, time-boxed jobs, tests)."""

from __future__ import annotations

import logging

from ignite.engine import Engine, Events

__all__ = ["StopAfterIterations"]

logger = logging.getLogger(__name__)


class StopAfterIterations:
    """Terminate the engine once ``engine.state.iteration`` reaches ``iterations``.

    Attach it after the checkpoint and validation handlers, so the state of the last iteration is
    on disk. When the limit falls on an epoch's last iteration, the engine stops after that
    epoch's handlers ran (validation, adapters); when it falls on the stage's last iteration, the
    stage simply completes.
    """

    def __init__(self, iterations: int) -> None:
        self.iterations = iterations

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        state = engine.state
        if state.iteration < self.iterations or state.iteration >= state.epoch_length * state.max_epochs:
            return
        if state.iteration % state.epoch_length == 0 and engine.last_event_name == Events.ITERATION_COMPLETED:
            return  # wait for EPOCH_COMPLETED so the epoch's validation and saves happen
        logger.info("Stopping after iteration %d as requested; re-run to resume.", state.iteration)
        engine.terminate()
