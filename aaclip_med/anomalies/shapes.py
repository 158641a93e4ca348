"""Random shapes for synthetic anomalies: smooth noise, blobs, scratches.

Every function takes a ``numpy.random.Generator`` so the same seed gives the same shapes; there is
no hidden global random state.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import line_aa

__all__ = ["smooth_noise", "perlin_noise", "blob_mask", "scratch_mask", "feather"]


def smooth_noise(shape: tuple[int, ...], rng: np.random.Generator, octaves: int = 3, base_cells: int = 3) -> np.ndarray:
    """Perlin-like value noise in [0, 1]: random lattices of growing resolution, upsampled and summed.

    Args:
        shape: output shape (2D or 3D).
        rng: random generator.
        octaves: number of lattices; each doubles the resolution and halves the amplitude.
        base_cells: lattice cells along each axis of the coarsest octave.

    Returns:
        float64 array of ``shape`` scaled to [0, 1].
    """
    out = np.zeros(shape)
    for octave in range(octaves):
        cells = base_cells * 2**octave + 1
        lattice = rng.random((cells,) * len(shape))
        # order-3 zoom of a random lattice is a smooth field, close enough to gradient noise here
        zoomed = ndimage.zoom(lattice, [s / cells for s in shape], order=3, mode="nearest", grid_mode=True)
        out += zoomed[tuple(slice(0, s) for s in shape)] / 2**octave
    out -= out.min()
    return out / max(float(out.max()), 1e-12)


def perlin_noise(shape: tuple[int, int], cells: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2D Perlin gradient noise (Perlin 2002) in [-1, 1], zero on every lattice point.

    A random unit gradient sits on each lattice point; a pixel's value is the quintic-faded blend
    of the four dot products with its cell's corner gradients, times sqrt(2): the blend of unit
    gradients lies in [-1/sqrt(2), 1/sqrt(2)], and DRAEM's ``rand_perlin_2d_np`` scales it by
    sqrt(2) before thresholding it at 0.5 to draw its anomaly masks (larger ``cells``: smaller,
    more scattered blobs). Without the scale the same threshold keeps about a thirteenth of the area.

    Args:
        shape: (H, W) of the output.
        cells: lattice cells along H and W (>= 1 each).
        rng: random generator.

    Returns:
        float64 array of ``shape``.
    """
    ch, cw = (max(int(c), 1) for c in cells)
    angles = rng.uniform(0.0, 2 * np.pi, (ch + 1, cw + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # (ch + 1, cw + 1, 2)
    y = np.arange(shape[0]) * (ch / shape[0])
    x = np.arange(shape[1]) * (cw / shape[1])
    yy, xx = np.meshgrid(y, x, indexing="ij")  # (H, W) positions in lattice units
    iy, ix = np.floor(yy).astype(int), np.floor(xx).astype(int)
    fy, fx = yy - iy, xx - ix  # offsets inside the cell, in [0, 1)

    def corner(dy: int, dx: int) -> np.ndarray:
        g = grads[iy + dy, ix + dx]  # (H, W, 2)
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    def fade(t: np.ndarray) -> np.ndarray:
        return t * t * t * (t * (t * 6 - 15) + 10)

    wy, wx = fade(fy), fade(fx)
    top = corner(0, 0) * (1 - wx) + corner(0, 1) * wx
    bottom = corner(1, 0) * (1 - wx) + corner(1, 1) * wx
    return np.sqrt(2.0) * (top * (1 - wy) + bottom * wy)


def blob_mask(
    shape: tuple[int, ...],
    center: tuple[float, ...],
    radii: tuple[float, ...],
    rng: np.random.Generator,
    roughness: float = 0.35,
) -> np.ndarray:
    """An irregular, lesion-like blob: an ellipse (or ellipsoid) whose border is pushed by noise.

    Args:
        shape: image shape (2D or 3D).
        center: blob centre in voxels.
        radii: semi-axes in voxels.
        rng: random generator.
        roughness: how far noise moves the border, as a fraction of the radius.

    Returns:
        Boolean mask with one connected blob (the largest component is kept).
    """
    grids = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    radius = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii)))
    noise = smooth_noise(shape, rng, octaves=2, base_cells=4)
    mask = radius < 1.0 + roughness * (noise - 0.5) * 2
    labels, count = ndimage.label(mask)
    if count > 1:  # keep one lesion: the largest piece
        sizes = ndimage.sum(mask, labels, range(1, count + 1))
        mask = labels == (int(np.argmax(sizes)) + 1)
    return mask


def scratch_mask(shape: tuple[int, int], rng: np.random.Generator, width: int = 2, bends: int = 3) -> np.ndarray:
    """A thin, slightly bent scratch: a poly-line of random segments, dilated to ``width`` pixels."""
    h, w = shape
    points = [np.array([rng.uniform(0.2, 0.8) * h, rng.uniform(0.15, 0.35) * w])]
    angle = rng.uniform(-0.6, 0.6)
    step = 0.6 * w / bends
    for _ in range(bends):
        angle += rng.uniform(-0.4, 0.4)
        points.append(points[-1] + step * np.array([np.sin(angle), np.cos(angle)]))
    mask = np.zeros(shape, bool)
    for start, stop in zip(points[:-1], points[1:]):
        rr, cc, _ = line_aa(*np.round(start).astype(int), *np.round(stop).astype(int))
        keep = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        mask[rr[keep], cc[keep]] = True
    return ndimage.binary_dilation(mask, iterations=max(width // 2, 1))


def feather(mask: np.ndarray, width: float, floor: float = 0.4) -> np.ndarray:
    """Blend weights that fade towards the border of ``mask`` and are exactly 0 outside it.

    The weight never drops below ``floor`` inside the mask, so every masked pixel is really changed
    and the ground truth equals the set of changed pixels.

    Args:
        mask: boolean mask (2D or 3D).
        width: distance (voxels) over which the weight rises from ``floor`` to 1.
        floor: weight on the mask border.
    """
    distance = ndimage.distance_transform_edt(mask)
    weight = floor + (1.0 - floor) * np.clip((distance - 1.0) / max(width, 1e-6), 0.0, 1.0)
    return np.where(mask, weight, 0.0)
