"""Small images in their loaded units for the synthetic-anomaly tests."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor


def ct_slice(size: int = 64, seed: int = 0) -> MetaTensor:
    """(1, H, W) CT slice in HU: air (-1000) around an elliptic body of soft tissue (about 40 HU)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - size / 2) / (size * 0.35)) ** 2 + ((xx - size / 2) / (size * 0.3)) ** 2 < 1
    hu = np.where(body, 40 + 15 * rng.standard_normal((size, size)), -1000.0)
    return MetaTensor(torch.tensor(hu[None], dtype=torch.float32))


def photo(size: int = 64, seed: int = 0) -> MetaTensor:
    """(3, H, W) 8-bit-range colour image (float values 0-255, as loaded)."""
    rng = np.random.default_rng(seed)
    return MetaTensor(torch.tensor(rng.integers(30, 220, (3, size, size)), dtype=torch.float32))


def changed(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: pixels where any channel differs."""
    return (torch.as_tensor(before) != torch.as_tensor(after)).any(dim=0)
