"""Inference: batched prediction, maps on the source grid, writers, calibration and cohort runs.

Entry points: :func:`run_inference` (cohort or manifest runs, settings in :class:`InferenceOptions`),
:func:`predict_volume` (one MetaTensor in, map on its grid out), :class:`Predictor` (batched
slices), :func:`fit_calibration` (normal-reference score calibration, documented in ``calibration.py``).

Names are loaded on first use, so the CLI reads ``aaclip_med.inference.options`` (its defaults and
checks) without importing torch.
"""

from __future__ import annotations

from aaclip_med._lazy import lazy_exports

_API = {
    "calibration_from_model": "aaclip_med.inference.api",
    "fit_calibration": "aaclip_med.inference.api",
    "run_inference": "aaclip_med.inference.api",
    "Calibration": "aaclip_med.inference.calibration",
    "ClassCalibration": "aaclip_med.inference.calibration",
    "load_calibration": "aaclip_med.inference.calibration",
    "save_calibration": "aaclip_med.inference.calibration",
    "InferenceOptions": "aaclip_med.inference.options",
    "SliceOptions": "aaclip_med.inference.options",
    "Predictor": "aaclip_med.inference.predictor",
    "SlicePredictions": "aaclip_med.inference.predictor",
    "Case": "aaclip_med.inference.sources",
    "discover_cases": "aaclip_med.inference.sources",
    "CaseResult": "aaclip_med.inference.volume",
    "SliceScore": "aaclip_med.inference.volume",
    "predict_case": "aaclip_med.inference.volume",
    "predict_volume": "aaclip_med.inference.volume",
}

__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)
