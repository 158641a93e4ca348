"""Stop a stage after a number of iterations, resumably (smoke runs, time-boxed jobs, tests)."""

from __future__ import annotations

import logging

from ignite.engine import Engine, Events

__all__ = ["StopAfterIterations"]

logger = logging.getLogger(__name__)


class StopAfterIterations:
    """Terminate the engine once ``engine.state.iteration`` reaches ``iterations``.

    Attach it after the checkpoint handler, so the state of the last iteration is on disk.
    """

    def __init__(self, iterations: int) -> None:
        self.iterations = iterations

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if engine.state.iteration >= self.iterations:
            logger.info("Stopping after iteration %d as requested; re-run to resume.", engine.state.iteration)
            engine.terminate()
