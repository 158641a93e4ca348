"""Synthetic anomalies with exact ground truth: each function returns the changed image and a mask.

Contract of every ``plant_*`` function: the returned mask is exactly the set of pixels (voxels)
whose value differs from the input. Tests rely on it, and it is what makes the sample's masks
trustworthy ground truth.

Medical images get blended, lesion-like blobs (brighter or darker tissue with a soft border).
Texture images get the defect families of industrial benchmarks: scratches, holes, colour spots
and cut-paste patches.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .shapes import blob_mask, feather, scratch_mask, smooth_noise

__all__ = [
    "Planted",
    "plant_lesion",
    "plant_scratch",
    "plant_hole",
    "plant_color_spot",
    "plant_cut_paste",
    "TEXTURE_DEFECTS",
]


class Planted(NamedTuple):
    """An image with a planted anomaly."""

    image: np.ndarray  # same shape and dtype as the input
    mask: np.ndarray  # bool, spatial shape of the image; True exactly where pixels changed
    kind: str  # defect family, e.g. "lesion", "scratch"


def _finish(clean: np.ndarray, changed: np.ndarray, mask: np.ndarray, kind: str) -> Planted:
    """Cast back to the input dtype and make sure every masked pixel really differs.

    Rounding or clipping can leave a masked pixel equal to its old value (a dark scratch on a pixel
    that is already black); such pixels are nudged by a few grey levels so that mask == changed.
    """
    dtype = clean.dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        changed = np.clip(np.rint(changed), info.min, info.max)
    out = changed.astype(dtype)
    spatial = mask if out.ndim == mask.ndim else mask[..., None]
    out = np.where(spatial, out, clean)  # nothing outside the mask may move
    same = (out == clean) if out.ndim == mask.ndim else (out == clean).all(axis=-1)
    same &= mask
    if same.any():
        nudge = np.where(clean[same] > (np.iinfo(dtype).max // 2 if np.issubdtype(dtype, np.integer) else 0.5), -4, 4)
        out[same] = (clean[same].astype(np.float64) + nudge).astype(dtype)
    return Planted(out, mask.copy(), kind)


def plant_lesion(
    image: np.ndarray,
    rng: np.random.Generator,
    center: tuple[float, ...],
    radii: tuple[float, ...],
    delta: float | np.ndarray,
    texture: float = 0.3,
) -> Planted:
    """Blend a lesion-like blob into a gray volume/slice or an RGB photo.

    Args:
        image: (H, W), (X, Y, Z) or (H, W, 3) array (any numeric dtype).
        rng: random generator.
        center: centre of the blob in voxels of the spatial axes.
        radii: semi-axes in voxels.
        delta: intensity change at the blob's core (image units, e.g. HU); a 3-vector for RGB.
        texture: relative amplitude of noise inside the lesion, so it is not a flat disc.
    """
    spatial = image.shape if np.ndim(delta) == 0 else image.shape[:-1]
    mask = blob_mask(spatial, center, radii, rng)
    weight = feather(mask, width=max(min(radii) / 2, 1.0)) * (1 - texture + texture * smooth_noise(spatial, rng))
    weight = np.where(mask, np.maximum(weight, 0.3), 0.0)  # keep every lesion voxel visibly changed
    change = weight[..., None] * np.asarray(delta, float) if np.ndim(delta) else weight * float(delta)
    return _finish(image, image.astype(np.float64) + change, mask, "lesion")


def _random_center(shape: tuple[int, int], rng: np.random.Generator, margin: float = 0.25) -> tuple[float, float]:
    return tuple(float(rng.uniform(margin * s, (1 - margin) * s)) for s in shape)


def plant_scratch(image: np.ndarray, rng: np.random.Generator) -> Planted:
    """A thin bright or dark scratch across an (H, W, 3) uint8 texture."""
    mask = scratch_mask(image.shape[:2], rng, width=int(rng.integers(2, 4)))
    shade = 235.0 if rng.random() < 0.5 else 25.0
    weight = feather(mask, width=1.5, floor=0.6)[..., None]
    return _finish(image, image * (1 - weight) + shade * weight, mask, "scratch")


def plant_hole(image: np.ndarray, rng: np.random.Generator) -> Planted:
    """A dark, shaded hole (a pit in the surface) in an (H, W, 3) uint8 texture."""
    h, w = image.shape[:2]
    radius = float(rng.uniform(0.05, 0.09)) * min(h, w)
    mask = blob_mask((h, w), _random_center((h, w), rng), (radius, radius * rng.uniform(0.7, 1.3)), rng, 0.15)
    weight = feather(mask, width=radius / 3, floor=0.5)[..., None]
    return _finish(image, image * (1 - 0.85 * weight), mask, "hole")


def plant_color_spot(image: np.ndarray, rng: np.random.Generator) -> Planted:
    """A stain of foreign colour (rust, paint, oil) in an (H, W, 3) uint8 texture."""
    h, w = image.shape[:2]
    radius = float(rng.uniform(0.07, 0.12)) * min(h, w)
    mask = blob_mask((h, w), _random_center((h, w), rng), (radius, radius * rng.uniform(0.6, 1.4)), rng, 0.4)
    colour = np.array([[200.0, 60.0, 20.0], [40.0, 90.0, 200.0], [210.0, 180.0, 30.0]])[rng.integers(3)]
    weight = 0.7 * feather(mask, width=radius / 2, floor=0.5)[..., None]
    return _finish(image, image * (1 - weight) + colour * weight, mask, "color_spot")


def plant_cut_paste(image: np.ndarray, rng: np.random.Generator) -> Planted:
    """CutPaste: a rotated patch of the same texture pasted somewhere else, with a hard border."""
    h, w = image.shape[:2]
    ph, pw = int(rng.uniform(0.15, 0.25) * h), int(rng.uniform(0.1, 0.2) * w)
    sy, sx = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
    patch = np.rot90(image[sy : sy + ph, sx : sx + pw], k=int(rng.integers(1, 4)))
    patch = np.clip(patch * rng.uniform(0.75, 1.25), 0, 255)  # a brightness step makes the seam visible
    ty, tx = int(rng.integers(0, h - patch.shape[0])), int(rng.integers(0, w - patch.shape[1]))
    changed = image.astype(np.float64)
    changed[ty : ty + patch.shape[0], tx : tx + patch.shape[1]] = patch
    mask = np.zeros((h, w), bool)
    mask[ty : ty + patch.shape[0], tx : tx + patch.shape[1]] = True
    return _finish(image, changed, mask, "cut_paste")


# defect families used for texture classes, cycled in this order
TEXTURE_DEFECTS = (plant_scratch, plant_hole, plant_color_spot, plant_cut_paste)
