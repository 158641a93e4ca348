"""Inference: batched prediction, maps on the source grid, writers, calibration and cohort runs.

Entry points: :func:`run_inference` (cohort or manifest runs, settings in :class:`InferenceOptions`),
:func:`predict_volume` (one MetaTensor in, map on its grid out), :class:`Predictor` (batched
slices), :func:`fit_calibration` (normal-reference score calibration, documented in ``calibration.py``).
"""

from aaclip_med.inference.api import calibration_from_model, fit_calibration, run_inference
from aaclip_med.inference.calibration import Calibration, ClassCalibration, load_calibration, save_calibration
from aaclip_med.inference.options import InferenceOptions, SliceOptions
from aaclip_med.inference.predictor import Predictor, SlicePredictions
from aaclip_med.inference.sources import Case, discover_cases
from aaclip_med.inference.volume import CaseResult, SliceScore, predict_case, predict_volume

__all__ = [
    "Calibration",
    "Case",
    "CaseResult",
    "ClassCalibration",
    "InferenceOptions",
    "Predictor",
    "SliceOptions",
    "SlicePredictions",
    "SliceScore",
    "calibration_from_model",
    "discover_cases",
    "fit_calibration",
    "load_calibration",
    "predict_case",
    "predict_volume",
    "run_inference",
    "save_calibration",
]
