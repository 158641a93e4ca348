"""Gaussian smoothing of the patch-grid maps (spec section 5), kornia ``gaussian_blur2d`` semantics."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aaclip_med.keys import Domain

__all__ = ["SMOOTHING", "gaussian_kernel1d", "gaussian_blur", "level_maps_to_map"]

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


def level_maps_to_map(levels: torch.Tensor, domain: str, size: tuple[int, int], sum_first: bool = False) -> torch.Tensor:
    """Per-level patch-grid maps -> one map at ``size``: blur each level with ``domain``'s kernel,
    upsample (bilinear, corners aligned) and sum over the levels (spec section 5).

    The zero-shot map and the reference memory's map both go through here, so they are smoothed
    and upsampled identically.

    Args:
        levels: (B, n, g, g) one map per level on the patch grid.
        domain: ``medical`` or ``industrial`` (smoothing kernel).
        size: (H, W) of the map.
        sum_first: sum the smoothed levels on the patch grid, then upsample once. Bilinear
            upsampling is linear, so this is the same map up to float rounding and n times less
            work at full size; the default keeps the reference order (upsample each, then sum).

    Returns:
        (B, H, W) float32.
    """
    if domain not in SMOOTHING:
        raise ValueError(f"Unknown domain {domain!r}; use one of {sorted(SMOOTHING)}.")
    ksize, sigma = SMOOTHING[domain]
    smoothed = gaussian_blur(levels.float(), ksize, sigma)  # (B, n, g, g)
    if sum_first:
        summed = smoothed.sum(dim=1, keepdim=True)  # (B, 1, g, g)
        return F.interpolate(summed, size=size, mode="bilinear", align_corners=True)[:, 0]
    total = None
    for index in range(smoothed.shape[1]):
        level = F.interpolate(smoothed[:, index : index + 1], size=size, mode="bilinear", align_corners=True)
        total = level if total is None else total + level
    return total[:, 0]
