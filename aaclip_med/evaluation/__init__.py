"""Evaluation: exact metrics at full resolution and reports (JSON, CSV, HTML, Markdown).

The metric functions are pure (arrays in, numbers out); :func:`evaluate_predictions` reads a
predictions directory written by ``aaclip-med infer --manifest`` and writes the reports.
"""

from aaclip_med._lazy import lazy_exports

# loaded on first use: the CLI reads aaclip_med.evaluation.settings without numpy
_MODULES = {
    "aaclip_med.evaluation.accumulator": ("ImageAccumulator", "PixelAccumulator"),
    "aaclip_med.evaluation.binary_metrics": ("BinaryMetrics", "Curves"),
    "aaclip_med.evaluation.evaluate": ("evaluate_predictions",),
    "aaclip_med.evaluation.metrics": ("image_metrics", "pixel_and_image_auroc", "pixel_metrics"),
}

__all__ = sorted(name for names in _MODULES.values() for name in names)
__getattr__ = lazy_exports(__name__, _MODULES)
