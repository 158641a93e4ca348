"""Best-epoch selection: validate after each epoch, keep the best mean AUROC, resume with the record."""

from __future__ import annotations

from ignite.engine import Engine

from aaclip_med.training.handlers import BestEpochSelector
from aaclip_med.training.handlers.best_epoch import selection_metric


def _run(metrics_per_epoch: list[dict], best: dict) -> tuple[list[int], Engine]:
    results = iter(metrics_per_epoch)
    chosen: list[int] = []
    engine = Engine(lambda engine, batch: None)
    BestEpochSelector(lambda: next(results), lambda epoch, metrics: chosen.append(epoch), best).attach(engine)
    engine.run([0], max_epochs=len(metrics_per_epoch))
    return chosen, engine


def test_selection_metric_is_the_mean_of_the_defined_aurocs():
    assert selection_metric({"pixel_auroc": 0.8, "image_auroc": 0.6}) == 0.7
    assert selection_metric({"pixel_auroc": None, "image_auroc": 0.6, "image_auroc_reason": "one class"}) == 0.6
    assert selection_metric({"pixel_auroc": None, "image_auroc": None}) is None


def test_best_epoch_is_kept_and_metrics_are_published():
    best = {"metric": None, "epoch": None}
    epochs = [{"pixel_auroc": 0.6, "image_auroc": 0.6}, {"pixel_auroc": 0.9, "image_auroc": 0.7},
              {"pixel_auroc": 0.7, "image_auroc": 0.7}]
    chosen, engine = _run(epochs, best)
    assert chosen == [1, 2] and best == {"metric": 0.8, "epoch": 2}
    assert engine.state.metrics == {"val_pixel_auroc": 0.7, "val_image_auroc": 0.7}  # the latest epoch's


def test_a_resumed_run_must_beat_the_recorded_best():
    best = {"metric": 0.85, "epoch": 4}  # from the training state of the interrupted run
    chosen, _ = _run([{"pixel_auroc": 0.8, "image_auroc": 0.8}], best)
    assert chosen == [] and best == {"metric": 0.85, "epoch": 4}
