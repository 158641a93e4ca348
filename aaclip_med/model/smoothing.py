"""Gaussian smoothing of the patch-grid maps (spec section 5), kornia ``gaussian_blur2d`` semantics."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aaclip_med.keys import Domain

__all__ = ["SMOOTHING", "gaussian_kernel1d", "gaussian_blur"]

# (kernel size, sigma) per domain.
SMOOTHING: dict[str, tuple[int, float]] = {
    Domain.INDUSTRIAL: (7, 1.0),
    Domain.MEDICAL: (9, 1.5),
}


def gaussian_kernel1d(size: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised sampled Gaussian of odd length ``size`` centred on the middle tap."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be a positive odd number, got {size}.")
    if sigma <= 0:
        raise ValueError(f"Gaussian sigma must be positive, got {sigma}.")
    x = torch.arange(size, dtype=dtype, device=device) - size // 2
    kernel = torch.exp(-(x**2) / (2.0 * sigma**2))
    return kernel / kernel.sum()


def gaussian_blur(maps: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding.

    Args:
        maps: (B, C, H, W).
        size: odd kernel size.
        sigma: standard deviation in pixels.

    Returns:
        (B, C, H, W), same dtype.
    """
    b, c, h, w = maps.shape
    pad = size // 2
    if pad >= h or pad >= w:
        msg = f"Map of {h}x{w} is too small for reflect padding of a {size}-tap kernel."
        raise ValueError(msg)
    kernel = gaussian_kernel1d(size, sigma, dtype=maps.dtype, device=maps.device)
    x = maps.reshape(b * c, 1, h, w)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, size))  # horizontal pass
    x = F.conv2d(x, kernel.view(1, 1, size, 1))  # vertical pass
    return x.reshape(b, c, h, w)
