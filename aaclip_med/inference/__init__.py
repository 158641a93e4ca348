"""Inference: batched prediction, maps on the source grid, writers, calibration and cohort runs.

Entry points: :func:`run_inference` (cohort or manifest runs, settings in :class:`InferenceOptions`),
:func:`predict_volume` (one MetaTensor in, map on its grid out), :class:`Predictor` (batched
slices), :func:`fit_calibration` (normal-reference score calibration, documented in ``calibration.py``).

Names are loaded on first use, so the CLI reads ``aaclip_med.inference.options`` (its defaults and
checks) without importing torch.
"""

from __future__ import annotations

from aaclip_med._lazy import lazy_exports

_MODULES = {
    "aaclip_med.inference.api": ("calibration_from_model", "fit_calibration", "run_inference"),
    "aaclip_med.inference.calibration": ("Calibration", "ClassCalibration", "load_calibration", "save_calibration"),
    "aaclip_med.inference.options": ("InferenceOptions", "SliceOptions"),
    "aaclip_med.inference.predictor": ("Predictor", "SlicePredictions"),
    "aaclip_med.inference.sources": ("Case", "discover_cases"),
    "aaclip_med.inference.volume": ("CaseResult", "SliceScore", "predict_case", "predict_volume"),
}

__all__ = sorted(name for names in _MODULES.values() for name in names)

__getattr__ = lazy_exports(__name__, _MODULES)
