"""Best-epoch selection: after each epoch, validate and keep the epoch whose mean AUROC is highest.

Named for what it does; MONAI's ``ValidationHandler`` (which only runs an evaluator) is a
different class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ignite.engine import Engine, Events

__all__ = ["BestEpochSelector", "selection_metric"]

logger = logging.getLogger(__name__)


def selection_metric(metrics: dict) -> float | None:
    """Mean of the defined AUROCs (pixel, image); None when neither is defined."""
    values = [metrics[k] for k in ("pixel_auroc", "image_auroc") if isinstance(metrics.get(k), float)]
    return sum(values) / len(values) if values else None


class BestEpochSelector:
    """Runs ``evaluate_fn()`` after each epoch and calls ``on_best(epoch, metrics)`` on improvement.

    The metrics also go to ``engine.state.metrics`` as ``val_<name>`` (TensorBoard reads them there).

    The data evaluated is a validation split the user names; the test set is never used for
    selection.

    Args:
        evaluate_fn: returns ``{"pixel_auroc", "image_auroc", ...}`` for the current weights.
        on_best: called when the selection metric improves on ``best["metric"]``.
        best: shared record ``{"metric", "epoch"}``, also stored in the training state so a
            resumed run keeps its best.
    """

    def __init__(self, evaluate_fn: Callable[[], dict], on_best: Callable[[int, dict], None], best: dict) -> None:
        self.evaluate_fn, self.on_best, self.best = evaluate_fn, on_best, best
        self.latest: dict = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        self.latest = self.evaluate_fn()
        engine.state.metrics.update({f"val_{k}": v for k, v in self.latest.items() if isinstance(v, float)})
        score = selection_metric(self.latest)
        logger.info("validation after epoch %d: %s (selection %s)", engine.state.epoch, self.latest, score)
        if score is not None and (self.best.get("metric") is None or score > self.best["metric"]):
            self.best.update(metric=score, epoch=engine.state.epoch)
            self.on_best(engine.state.epoch, self.latest)
