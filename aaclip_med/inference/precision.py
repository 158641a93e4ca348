"""Numeric precision of inference: fp32, or bf16/fp16 autocast where the device supports it.

The network's maps are always returned in float32 (``AAClip.anomaly_map`` casts), so autocast only
changes the speed and the last digits of the scores, never the dtype of what writers receive.
"""

from __future__ import annotations

import contextlib
import logging

import torch

from aaclip_med.model.fast import autocast_dtype

__all__ = ["PRECISIONS", "resolve_precision", "autocast_context"]

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision actually used on ``device``, falling back (with a warning) where unsupported.

    CPU autocast runs bf16 (fp16 on CPU is slow or missing, so it becomes bf16); on CUDA, bf16
    needs compute capability >= 8.0, otherwise fp16 is used.

    Raises:
        ValueError: unknown precision name.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose one of {list(PRECISIONS)}.")
    if precision == "fp32":
        return precision
    if device.type == "cpu" and precision == "fp16":
        logger.warning("fp16 autocast is not offered on CPU; using bf16 instead.")
        return "bf16"
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        logger.warning("This GPU has no bf16 support; using fp16 autocast instead.")
        return "fp16"
    if device.type not in ("cpu", "cuda"):
        logger.warning("No autocast on device %s; running fp32.", device)
        return "fp32"
    return precision


def autocast_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """A context manager running the forward pass in ``precision`` (already resolved) on ``device``."""
    dtype = autocast_dtype(precision, device)  # the fast path's name -> dtype mapping, one place
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
