"""Numeric precision: one vocabulary for inference and training, and where each runs natively.

Names: ``auto``, ``fp32``, ``bf16``, ``fp16``, and for inference only ``int8`` (the frozen image
tower's linears as dynamic int8 GEMMs on the CPU, see :mod:`aaclip_med.model.fast`). ``auto``
resolves per device (never to int8):

- CUDA: bf16 where the GPU supports it (compute capability >= 8.0), else fp16;
- CPU: bf16 where the processor has native bf16 dot products (x86 AVX512-BF16 or AMX, Arm BF16),
  else fp32 — without them oneDNN emulates bf16 through fp32 and it is slower than fp32;
- any other device: fp32.

An explicit choice is honoured where it can run and refused where it cannot (fp16 on a CPU, bf16
on a GPU without it), with a message naming the device; bf16 on a CPU without native support
runs (the numbers are right) with a warning that it is slow. Reduced precision is autocast:
parameters stay fp32 (training keeps fp32 master weights and losses).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the CLI reads the names before importing it
    import torch

__all__ = ["INFERENCE_PRECISIONS", "PRECISIONS", "autocast", "cpu_flags", "cpu_supports_bf16", "precision_dtype", "resolve_precision"]

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Inference adds int8: dynamic int8 linears in the frozen image tower (CPU only; no autocast dtype).
INFERENCE_PRECISIONS = (*PRECISIONS, "int8")
_AUTOCAST_DTYPES = {"fp32": None, "bf16": "bfloat16", "fp16": "float16", "int8": None}  # torch dtype names
# CPU feature flags (Linux /proc/cpuinfo) that mean bf16 matmuls run natively, not emulated.
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``: x86 ``flags``, Arm ``Features``); empty where
    they cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def cpu_supports_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when the CPU has native bf16 dot products (x86 AVX512-BF16 or AMX, Arm BF16).

    Where the flags cannot be read (not Linux) the answer is False: fp32 is always correct.
    """
    return bool(cpu_flags(cpuinfo) & set(_BF16_CPU_FLAGS))


def resolve_precision(precision: str, device: torch.device | str, inference: bool = False) -> str:
    """The precision that runs on ``device``: ``fp32``, ``bf16``, ``fp16`` (``auto`` resolved), or ``int8``.

    Args:
        precision: a name of :data:`PRECISIONS` (or :data:`INFERENCE_PRECISIONS` when ``inference``).
        device: where it runs.
        inference: accept ``int8`` (the fast inference path only; training has no int8).

    Raises:
        ValueError: unknown name, or a precision the device cannot run (the message says which to use).
    """
    import torch

    names = INFERENCE_PRECISIONS if inference else PRECISIONS
    if precision not in names:
        if precision == "int8":
            raise ValueError("precision 'int8' is for inference only; train with 'auto', 'fp32' or 'bf16'.")
        raise ValueError(f"Unknown precision {precision!r}; choose one of {list(names)}.")
    device = torch.device(device)
    if precision == "int8":
        if device.type != "cpu":
            raise ValueError(f"precision 'int8' runs on the CPU only, not on {device}; use 'auto' there.")
        return precision
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_supports_bf16() else "fp32"
    if precision == "fp32":
        return precision
    if device.type == "cpu":
        if precision == "fp16":
            raise ValueError("fp16 autocast is for GPUs; on a CPU use precision 'bf16', 'fp32' or 'auto'.")
        if not cpu_supports_bf16():
            logger.warning("This CPU has no native bf16 (avx512_bf16/amx_bf16): bf16 is emulated and slower than fp32.")
        return precision
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"GPU {device} has no bf16 support; use precision 'fp16', 'fp32' or 'auto'.")
        return precision
    raise ValueError(f"No autocast on device {device}; use precision 'fp32' or 'auto'.")


def precision_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None for fp32 and int8: no autocast)."""
    import torch

    if precision not in _AUTOCAST_DTYPES:
        raise ValueError(f"{precision!r} is not a resolved precision; expected one of {list(_AUTOCAST_DTYPES)}.")
    name = _AUTOCAST_DTYPES[precision]
    return None if name is None else getattr(torch, name)


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """Autocast context of a resolved ``precision`` on ``device`` (a no-op for fp32 and int8)."""
    import torch

    dtype = precision_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
