"""aaclip-med: AA-CLIP zero-shot anomaly detection and segmentation for MONAI pipelines.

The Python API for research pipelines, importable from the top level (loaded on first use, so
``import aaclip_med`` stays light):

- network: :class:`AAClipConfig`, :func:`build_aaclip`, :func:`load_adapters`, :func:`save_adapters`,
  :func:`load_public_checkpoints`;
- data: :func:`load_image`, :func:`read_manifest`, :func:`build_manifest`;
- inference: :func:`run_inference` (cohorts and manifests) with its settings in
  :class:`InferenceOptions` / :class:`SliceOptions`, :func:`predict_volume` (one MetaTensor in, a
  map on its grid out), :class:`Predictor`;
- training: :func:`run_training`, :class:`TrainConfig`, :class:`SyntheticConfig` (normal-only
  training with synthetic anomalies);
- evaluation: :func:`evaluate_predictions`.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "AAClipConfig": "aaclip_med.model",
    "build_aaclip": "aaclip_med.model",
    "load_adapters": "aaclip_med.model",
    "save_adapters": "aaclip_med.model",
    "load_public_checkpoints": "aaclip_med.model",
    "load_image": "aaclip_med.data",
    "read_manifest": "aaclip_med.data",
    "build_manifest": "aaclip_med.data",
    "run_inference": "aaclip_med.inference",
    "InferenceOptions": "aaclip_med.inference",
    "SliceOptions": "aaclip_med.inference",
    "predict_volume": "aaclip_med.inference",
    "Predictor": "aaclip_med.inference",
    "run_training": "aaclip_med.training",
    "TrainConfig": "aaclip_med.training",
    "SyntheticConfig": "aaclip_med.training",
    "evaluate_predictions": "aaclip_med.evaluation",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'aaclip_med' has no attribute {name!r}")
