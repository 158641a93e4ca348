"""CutPaste's synthetic anomalies: a patch or a thin "scar" of the image pasted somewhere else.

CutPaste (Li, Sohn, Yoon, Pfister, "CutPaste: Self-Supervised Learning for Anomaly Detection and
Localization", CVPR 2021): the *patch* variant cuts a rectangle of 2-15 % of the image area
(uniform) with an aspect ratio in (0.3, 1) or (1, 3.3) (log-uniform over 0.3-3.3, so each side
equally likely) and pastes it at another place; the *scar* variant cuts a thin
rectangle (2-16 px wide, 10-25 px long on a 256 px image), rotates it by up to 45 degrees and
pastes it. The pasted pixels get a small intensity jitter (CutPaste's colour jitter of 0.1), here
a scale about the image's low percentile, so it works in HU as in 0-255.
"""

from __future__ import annotations

import math

import numpy as np
from monai.config import KeysCollection
from skimage.draw import polygon

from aaclip_med.keys import Keys

from .base import RandAnomaly, RandAnomalyd, robust_range

__all__ = ["RandCutPaste", "RandCutPasted", "CUTPASTE_VARIANTS", "patch_region"]

CUTPASTE_VARIANTS = ("patch", "scar")
_AREA = (0.02, 0.15)  # patch area, fraction of the image
_ASPECT = (0.3, 1 / 0.3)  # patch height / width
_SCAR_WIDTH, _SCAR_LENGTH = (2.0, 16.0), (10.0, 25.0)  # pixels on a 256-pixel image
_SCAR_ANGLE = 45.0  # degrees
_JITTER = 0.1


def patch_region(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(ph, pw) bool rectangle of the patch variant (area 2-15 % of h * w, height / width 0.3-3.3)."""
    area = rng.uniform(*_AREA) * h * w
    aspect = math.exp(rng.uniform(math.log(_ASPECT[0]), math.log(_ASPECT[1])))
    ph = int(np.clip(round(math.sqrt(area * aspect)), 1, h - 1))
    pw = int(np.clip(round(math.sqrt(area / aspect)), 1, w - 1))
    return np.ones((ph, pw), bool)


def _scar_region(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A thin rectangle rotated by up to 45 degrees, in its bounding box."""
    scale = min(h, w) / 256.0
    width = max(rng.uniform(*_SCAR_WIDTH) * scale, 1.5)
    length = max(rng.uniform(*_SCAR_LENGTH) * scale, 3.0)
    angle = math.radians(rng.uniform(-_SCAR_ANGLE, _SCAR_ANGLE))
    along, across = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
    corners = np.array([s * along * length / 2 + t * across * width / 2 for s, t in ((-1, -1), (-1, 1), (1, 1), (1, -1))])
    corners -= corners.min(axis=0)
    size = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 1, (h - 1, w - 1))
    region = np.zeros(tuple(size), bool)
    rr, cc = polygon(corners[:, 0], corners[:, 1], shape=region.shape)
    region[rr, cc] = True
    return region


class RandCutPaste(RandAnomaly):
    """Paste a patch or a scar of a (C, H, W) image at another place of it.

    Args:
        variants: which of ``("patch", "scar")`` to draw from (uniformly).
        prob: probability of planting.
    """

    def __init__(self, variants: tuple[str, ...] = CUTPASTE_VARIANTS, prob: float = 1.0) -> None:
        super().__init__(prob)
        unknown = [v for v in variants if v not in CUTPASTE_VARIANTS]
        if unknown or not variants:
            msg = f"unknown CutPaste variant(s) {unknown or list(variants)}; choose from {CUTPASTE_VARIANTS}"
            raise ValueError(msg)
        self.variants = tuple(variants)

    def plant(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        _, h, w = image.shape
        variant = self.variants[int(rng.integers(len(self.variants)))]
        shape = patch_region(h, w, rng) if variant == "patch" else _scar_region(h, w, rng)
        ph, pw = shape.shape
        sy, sx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))  # cut here
        ty, tx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))  # paste there
        lo, _ = robust_range(image)
        patch = lo + (image[:, sy : sy + ph, sx : sx + pw] - lo) * rng.uniform(1 - _JITTER, 1 + _JITTER)
        changed, region = image.copy(), np.zeros((h, w), bool)
        region[ty : ty + ph, tx : tx + pw] = shape
        target = changed[:, ty : ty + ph, tx : tx + pw]
        changed[:, ty : ty + ph, tx : tx + pw] = np.where(shape[None], patch, target)
        return changed, region


class RandCutPasted(RandAnomalyd):
    """Dictionary twin of :class:`RandCutPaste` (writes image, exact mask and label).

    Args:
        keys: the image key.
        variants: see :class:`RandCutPaste`.
        prob: probability of planting an anomaly in a normal sample.
        mask_key, label_key, allow_missing_keys: see :class:`aaclip_med.anomalies.base.RandAnomalyd`.
    """

    def __init__(self, keys: KeysCollection = Keys.IMAGE, variants: tuple[str, ...] = CUTPASTE_VARIANTS,
                 prob: float = 1.0, mask_key: str = Keys.MASK, label_key: str = Keys.LABEL,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, RandCutPaste(variants), prob, mask_key, label_key, allow_missing_keys)
