"""PNG outputs for plain images: a colour heatmap and a blend of image and heatmap, at original size."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image

from aaclip_med.data.display import display_image, to_rgb8
from aaclip_med.files import atomic_path

__all__ = ["colorize", "write_heatmap_png", "write_blend_png", "image_to_rgb8"]


def colorize(score_map: np.ndarray, value_range: tuple[float, float] | None = None, cmap: str = "jet") -> np.ndarray:
    """(H, W) map -> (H, W, 3) uint8 colours.

    Args:
        score_map: raw anomaly map.
        value_range: (low, high) mapped to the ends of the colour map; default the map's own
            min/max (so a heatmap shows where, not how much: compare images by their scores).
        cmap: matplotlib colour map name.
    """
    score_map = np.asarray(score_map, dtype=np.float64)
    low, high = value_range if value_range else (float(score_map.min()), float(score_map.max()))
    scaled = np.clip((score_map - low) / max(high - low, 1e-12), 0.0, 1.0)
    return (colormaps[cmap](scaled)[..., :3] * 255).round().astype(np.uint8)


def image_to_rgb8(image: torch.Tensor | np.ndarray, intensity_max: float | None = None) -> np.ndarray:
    """(C, H, W) loaded image -> (H, W, 3) uint8, by the package's display rule (:mod:`aaclip_med.data.display`)."""
    return to_rgb8(display_image(image, intensity_max))


def _save_png(rgb: np.ndarray, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return Path(path)


def write_heatmap_png(
    score_map: np.ndarray, path: str | os.PathLike, value_range: tuple[float, float] | None = None
) -> Path:
    """Write the (H, W) map as a colour PNG of the same size."""
    return _save_png(colorize(score_map, value_range), path)


def write_blend_png(
    image_rgb: np.ndarray,
    score_map: np.ndarray,
    path: str | os.PathLike,
    alpha: float = 0.5,
    value_range: tuple[float, float] | None = None,
) -> Path:
    """Write ``(1 - alpha) * image + alpha * heatmap``; image (H, W, 3) uint8, map (H, W)."""
    if image_rgb.shape[:2] != np.asarray(score_map).shape:
        raise ValueError(f"image {image_rgb.shape[:2]} and map {np.asarray(score_map).shape} differ in size.")
    heat = colorize(score_map, value_range).astype(np.float64)
    blend = (1.0 - alpha) * image_rgb.astype(np.float64) + alpha * heat
    return _save_png(blend.round().astype(np.uint8), path)
