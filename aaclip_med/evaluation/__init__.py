"""Evaluation: exact metrics at full resolution and reports (JSON, CSV, HTML, Markdown).

The metric functions are pure (arrays in, numbers out); :func:`evaluate_predictions` reads a
predictions directory written by ``aaclip-med infer --manifest`` and writes the reports.
"""

from aaclip_med.evaluation.accumulator import ImageAccumulator, PixelAccumulator
from aaclip_med.evaluation.binary_metrics import BinaryMetrics, Curves
from aaclip_med.evaluation.evaluate import evaluate_predictions
from aaclip_med.evaluation.metrics import image_metrics, pixel_and_image_auroc, pixel_metrics

__all__ = [
    "BinaryMetrics",
    "Curves",
    "evaluate_predictions",
    "ImageAccumulator",
    "PixelAccumulator",
    "image_metrics",
    "pixel_and_image_auroc",
    "pixel_metrics",
]
