"""The one rule that turns a loaded image into a display image (report tiles, viewer, demo, PNG writers).

Plain 8-/16-bit images are divided by their format's maximum (``intensity_max`` in the loaded
image's meta), so a dark photo stays dark. Everything else (CT in HU, MR, float TIFF) is stretched
between its 1st and 99.5th percentiles; a slice of a volume uses the window of the whole volume
(:func:`display_range` over all voxels), so every slice of one series is shown alike.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["DISPLAY_PERCENTILES", "display_range", "display_image", "to_rgb8"]

DISPLAY_PERCENTILES = (1.0, 99.5)
_MIN_WIDTH = 1e-6  # a constant image still gets a valid window


def display_range(array: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """(low, high) display window of ``array``: its 1st and 99.5th percentiles (high > low)."""
    values = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    low, high = (float(v) for v in np.percentile(values, DISPLAY_PERCENTILES))
    return low, max(high, low + _MIN_WIDTH)


def display_image(image: np.ndarray | torch.Tensor, intensity_max: float | None = None,
                  value_range: tuple[float, float] | None = None) -> np.ndarray:
    """A loaded image as a float32 display image in [0, 1].

    Args:
        image: (C, H, W) channel-first, as the data layer loads it (C = 1 gray, 3 or more colour),
            or an (H, W) slice of a volume.
        intensity_max: the format's maximum (``intensity_max`` meta of plain images): divide by it.
        value_range: (low, high) window, e.g. :func:`display_range` of the whole volume; default
            the image's own :func:`display_range`. Ignored when ``intensity_max`` is given.

    Returns:
        (H, W) for gray, (H, W, 3) for colour.
    """
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else np.moveaxis(array[:3], 0, -1)
    array = array.astype(np.float32, copy=False)
    if intensity_max:
        scaled = array / np.float32(intensity_max)
    else:
        low, high = value_range or display_range(array)
        scaled = (array - np.float32(low)) / np.float32(max(high - low, _MIN_WIDTH))
    return np.clip(scaled, 0.0, 1.0)


def to_rgb8(display: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) display image in [0, 1] -> (H, W, 3) uint8."""
    rgb = np.repeat(display[..., None], 3, axis=-1) if display.ndim == 2 else display
    return np.ascontiguousarray((np.clip(rgb, 0.0, 1.0) * 255).round().astype(np.uint8))
