"""Surface defects of industrial benchmarks: a thin scratch, a dark hole, a stain of foreign colour.

The bundled sample plants them in its texture photos; as registered kinds they also serve
normal-only training. Shades and colours are fractions of the image's own range (percentiles
1-99), so the same defect is drawn in 0-255 values, in [0, 1] values or in HU; a colour on a
one-channel image is its grey level.
"""

from __future__ import annotations

import numpy as np

from .base import RandAnomaly, robust_range
from .shapes import blob_mask, feather, scratch_mask

__all__ = ["RandScratch", "RandHole", "RandColorSpot"]

_SHADES = (235 / 255, 25 / 255)  # bright or dark scratch, as a fraction of the range
_COLOURS = np.array([[200.0, 60.0, 20.0], [40.0, 90.0, 200.0], [210.0, 180.0, 30.0]]) / 255  # rust, paint, oil


def _center(shape: tuple[int, ...], rng: np.random.Generator, margin: float = 0.25) -> tuple[float, ...]:
    return tuple(float(rng.uniform(margin * s, (1 - margin) * s)) for s in shape)


class RandScratch(RandAnomaly):
    """A thin, slightly bent bright or dark scratch (2-3 pixels wide) across a (C, H, W) image."""

    def plant(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        region = scratch_mask(image.shape[1:], rng, width=int(rng.integers(2, 4)))
        lo, hi = robust_range(image)
        shade = lo + (hi - lo) * (_SHADES[0] if rng.random() < 0.5 else _SHADES[1])
        weight = feather(region, width=1.5, floor=0.6)[None]
        return image * (1 - weight) + shade * weight, region


class RandHole(RandAnomaly):
    """A dark, shaded pit (radius 5-9 % of the shorter side) in a (C, H, W) image."""

    def plant(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        shape = image.shape[1:]
        radius = float(rng.uniform(0.05, 0.09)) * min(shape)
        region = blob_mask(shape, _center(shape, rng), (radius, radius * rng.uniform(0.7, 1.3)), rng, 0.15)
        weight = feather(region, width=radius / 3, floor=0.5)[None]
        lo, _ = robust_range(image)
        return image - 0.85 * weight * (image - lo), region


class RandColorSpot(RandAnomaly):
    """A stain of rust, paint or oil colour (radius 7-12 % of the shorter side) in a (C, H, W) image."""

    def plant(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        shape = image.shape[1:]
        radius = float(rng.uniform(0.07, 0.12)) * min(shape)
        region = blob_mask(shape, _center(shape, rng), (radius, radius * rng.uniform(0.6, 1.4)), rng, 0.4)
        colour = _COLOURS[rng.integers(len(_COLOURS))]
        colour = colour if image.shape[0] == 3 else np.full(image.shape[0], colour.mean())
        lo, hi = robust_range(image)
        colour = (lo + (hi - lo) * colour).reshape(-1, *([1] * len(shape)))  # (C, 1, 1)
        weight = 0.7 * feather(region, width=radius / 2, floor=0.5)[None]
        return image * (1 - weight) + colour * weight, region
