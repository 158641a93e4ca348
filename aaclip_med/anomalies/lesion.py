"""Lesion-like anomalies for CT and MR: blobs with an intensity offset in the modality's own units.

The offset is added before any intensity window, to the values as loaded, so it means what a
radiologist would read: for CT a change of 60-200 HU (an enhancing or hypodense lesion), for MR
and other unit-less images a fraction (25-60 %) of the foreground's intensity range (percentiles
1-99). The blob is an irregular ellipse (:func:`aaclip_med.anomalies.shapes.blob_mask`) clipped
to the foreground (the body, never the air around it), with a soft border (the offset fades over
half the radius) and smooth noise inside, so it is not a flat disc.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection
from scipy import ndimage
from skimage.filters import threshold_otsu

from aaclip_med.data.modality import AIR_HU, detect_modality
from aaclip_med.keys import Keys

from .base import RandAnomaly, RandAnomalyd, SyntheticAnomaly, exact, robust_range
from .shapes import blob_mask, feather, smooth_noise

__all__ = ["RandLesion", "RandLesiond", "foreground_mask", "plant_lesion", "lesion_change", "HU_OFFSET",
           "RELATIVE_OFFSET", "RADIUS_FRACTION"]

HU_OFFSET = (60.0, 200.0)  # CT: |offset| in HU at the lesion core
RELATIVE_OFFSET = (0.25, 0.6)  # other modalities: |offset| as a fraction of the foreground range
RADIUS_FRACTION = (0.04, 0.1)  # semi-axes as a fraction of the slice's shorter side
NOISE = 0.3  # relative amplitude of the smooth noise inside the lesion
GRAIN = 0.05  # standard deviation of the fine noise inside the lesion, relative to |offset|


def lesion_change(image: np.ndarray, region: np.ndarray, radii: tuple[float, ...], delta: float | np.ndarray,
                  rng: np.random.Generator, grain: float = GRAIN) -> np.ndarray:
    """``image`` (C, *spatial) with ``delta`` blended into ``region``: a soft border, smooth noise, fine grain.

    The offset fades over half the smallest radius towards the border but never below 30 %, so
    every region pixel is visibly changed; ``delta`` is a number or one value per channel.
    """
    shape = image.shape[1:]
    weight = feather(region, width=max(min(radii) / 2, 1.0)) * (1 - NOISE + NOISE * smooth_noise(shape, rng))
    weight = np.where(region, np.maximum(weight, 0.3), 0.0)
    delta = np.asarray(delta, float).reshape(-1, *([1] * len(shape)))  # (C or 1, 1, ...)
    change = weight[None] * delta
    if grain > 0:  # fine noise: tissue, not a smooth gradient
        change = change + region[None] * rng.normal(0.0, grain * float(np.abs(delta).max()), shape)[None]
    return image + change


def plant_lesion(image: np.ndarray, rng: np.random.Generator, center: tuple[float, ...], radii: tuple[float, ...],
                 delta: float | np.ndarray, grain: float = 0.0) -> SyntheticAnomaly:
    """One lesion at a chosen place of a (C, *spatial) array (a slice, a volume, a photo), exact mask.

    The bundled sample plants its lesions with it; :class:`RandLesion` draws the place, size and
    offset itself and uses the same blob and blend.

    Args:
        image: (C, *spatial) array of any numeric dtype (the output keeps it).
        rng: random generator.
        center: centre of the blob in voxels of the spatial axes.
        radii: semi-axes in voxels.
        delta: offset at the core in image units (e.g. HU), a number or one per channel.
        grain: fine noise inside the lesion, relative to ``|delta|`` (0: none).
    """
    region = blob_mask(image.shape[1:], center, radii, rng)
    out, mask = exact(image, lesion_change(image.astype(np.float64), region, radii, delta, rng, grain), region)
    return SyntheticAnomaly(out, mask[None])


def _modality_kind(modality: str | dict, image: np.ndarray, meta: dict) -> str:
    """The preset kind (``ct``, ``mri``, ...) of ``modality``, deciding ``auto`` on the image."""
    from aaclip_med.presets import get_modality

    if isinstance(modality, dict):
        return str(modality.get("kind"))
    if modality == "auto":
        modality = detect_modality(torch.from_numpy(image), meta=meta).name
    return str(get_modality(modality).get("kind"))


def foreground_mask(image: np.ndarray, kind: str, margin: int = 2) -> np.ndarray:
    """(H, W) bool: the body of a (C, H, W) slice, shrunk by ``margin`` pixels where that leaves any.

    CT: values above -500 HU (not air, the rule ``auto`` uses to recognise CT). MR: above Otsu's
    threshold of the channel mean (the dark background is not body). Photos, OCT and endoscopy:
    the whole frame. The margin keeps a lesion's soft border off the body's edge.
    """
    gray = image.mean(axis=0)
    if kind == "ct":
        body = gray > AIR_HU
    elif kind == "mri":
        body = gray > (threshold_otsu(gray) if np.ptp(gray) > 0 else np.inf)
    else:
        body = np.ones(gray.shape, bool)
    shrunk = ndimage.binary_erosion(body, iterations=margin, border_value=0) if margin else body
    return shrunk if shrunk.any() else body


class RandLesion(RandAnomaly):
    """Add a lesion-like blob to a (C, H, W) slice, in its own units, inside its foreground only.

    Args:
        modality: preset name (``ct``, ``mri``, ...), preset dict, or ``auto`` (decided per image
            as inference does): CT offsets are in HU, others relative to the foreground range.
        hu_offset: CT: range of |offset| in HU.
        relative_offset: other modalities: range of |offset| as a fraction of the range.
        radius_fraction: range of the semi-axes, as a fraction of the shorter side.
        prob: probability of planting.
    """

    def __init__(self, modality: str | dict = "auto", hu_offset: tuple[float, float] = HU_OFFSET,
                 relative_offset: tuple[float, float] = RELATIVE_OFFSET,
                 radius_fraction: tuple[float, float] = RADIUS_FRACTION, prob: float = 1.0) -> None:
        super().__init__(prob)
        for name, (lo, hi) in {"hu_offset": hu_offset, "relative_offset": relative_offset,
                               "radius_fraction": radius_fraction}.items():
            if not 0 < lo <= hi:
                msg = f"{name} must be a range 0 < low <= high, got {(lo, hi)}"
                raise ValueError(msg)
        self.modality, self.hu_offset = modality, tuple(hu_offset)
        self.relative_offset, self.radius_fraction = tuple(relative_offset), tuple(radius_fraction)

    @classmethod
    def for_training(cls, modality: str | dict = "auto", textures=None) -> RandLesion:
        return cls(modality)

    def offset(self, image: np.ndarray, body: np.ndarray, kind: str, rng: np.random.Generator) -> float:
        """The signed offset at the lesion core, in the image's units."""
        sign = 1.0 if rng.random() < 0.5 else -1.0
        if kind == "ct":
            return sign * float(rng.uniform(*self.hu_offset))
        lo, hi = robust_range(image.mean(axis=0)[body])
        return sign * float(rng.uniform(*self.relative_offset)) * (hi - lo)

    def plant(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        kind = _modality_kind(self.modality, image, self.meta)
        body = foreground_mask(image, kind)
        shape = image.shape[1:]
        if not body.any():  # nothing to put a lesion in: the sample stays normal
            return image, body
        ys, xs = np.nonzero(body)
        pick = int(rng.integers(len(ys)))
        radii = tuple(float(rng.uniform(*self.radius_fraction)) * min(shape) for _ in range(2))
        region = blob_mask(shape, (float(ys[pick]), float(xs[pick])), radii, rng) & body
        delta = self.offset(image, body, kind, rng)
        return lesion_change(image, region, radii, delta, rng), region


class RandLesiond(RandAnomalyd):
    """Dictionary twin of :class:`RandLesion` (writes image, exact mask and label).

    Args:
        keys: the image key.
        modality, hu_offset, relative_offset, radius_fraction: see :class:`RandLesion`.
        prob: probability of planting an anomaly in a normal sample.
        mask_key, label_key, allow_missing_keys: see :class:`aaclip_med.anomalies.base.RandAnomalyd`.
    """

    def __init__(self, keys: KeysCollection = Keys.IMAGE, modality: str | dict = "auto",
                 hu_offset: tuple[float, float] = HU_OFFSET, relative_offset: tuple[float, float] = RELATIVE_OFFSET,
                 radius_fraction: tuple[float, float] = RADIUS_FRACTION, prob: float = 1.0,
                 mask_key: str = Keys.MASK, label_key: str = Keys.LABEL, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, RandLesion(modality, hu_offset, relative_offset, radius_fraction), prob,
                         mask_key, label_key, allow_missing_keys)
