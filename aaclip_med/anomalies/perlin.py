"""DRAEM's synthetic anomalies: a thresholded Perlin-noise region filled with a foreign texture.

DRAEM (Zavrtanik, Kristan, Skocaj, "DRAEM - A discriminatively trained reconstruction embedding for
surface anomaly detection", ICCV 2021) draws a Perlin noise map in [-1, 1] with a random lattice
scale (2^k cells per axis, k drawn per axis from 0-5 as its code does), thresholds it at 0.5 to get
the anomaly region, and blends a texture
image into that region: ``out = (1 - m) * I + m * ((1 - beta) * T + beta * I)`` with
``beta ~ U(0, 0.8)`` drawn per sample. DRAEM takes textures from DTD; here the texture is another
training image (``textures``), mapped onto this image's intensity range (percentiles 1-99), so a
CT slice gets HU values and a photo 0-255 values. Without textures the image itself, flipped and
shifted, serves as texture. As in DRAEM, the texture first goes through three of its ten colour
and geometry operations (:mod:`aaclip_med.anomalies.texture_augment`): a texture of the same
kind as the image would otherwise fill the region with more of the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection

from aaclip_med.keys import Keys

from .base import RandAnomaly, RandAnomalyd, robust_range, to_numpy
from .shapes import perlin_noise
from .texture_augment import augment_texture

__all__ = ["RandPerlinAnomaly", "RandPerlinAnomalyd", "perlin_region", "PERLIN_THRESHOLD", "PERLIN_MAX_SCALE",
           "BLEND_RANGE"]

PERLIN_THRESHOLD = 0.5  # DRAEM: noise (in [-1, 1]) > 0.5 is the anomaly region
PERLIN_MAX_SCALE = 6  # DRAEM: lattice cells per axis are 2^k, k in [0, 6)
BLEND_RANGE = (0.0, 0.8)  # DRAEM: beta, the share of the original image kept inside the region


def perlin_region(shape: tuple[int, int], rng: np.random.Generator, threshold: float = PERLIN_THRESHOLD) -> np.ndarray:
    """(H, W) bool: one DRAEM anomaly region, Perlin noise of a random scale above ``threshold``.

    With DRAEM's settings a region covers about 5 % of the image on average (10-90 % of draws:
    2-8 %, whatever the image size), and about one draw in 25 is empty (a coarse lattice whose
    noise stays below 0.5); the generator then draws again (:data:`aaclip_med.anomalies.base.MAX_TRIES`), DRAEM instead
    labels the sample normal.
    """
    cells = tuple(2 ** int(rng.integers(0, PERLIN_MAX_SCALE)) for _ in range(2))
    region = perlin_noise(shape, cells, rng) > threshold
    return region[::-1] if rng.random() < 0.5 else region  # DRAEM rotates the map; a flip keeps (H, W)


def _texture_image(item: object) -> torch.Tensor:
    return item[Keys.IMAGE] if isinstance(item, dict) else item


class RandPerlinAnomaly(RandAnomaly):
    """Plant a DRAEM anomaly in a (C, H, W) image.

    Args:
        textures: a sequence of images (C', H', W') or sample dictionaries with an ``image``; one is
            drawn per anomaly, resized to the image and mapped to its intensity range. None or
            empty: the image itself, flipped and shifted.
        threshold: Perlin-noise threshold of the region.
        blend_range: range of beta, the share of the original kept inside the region.
        augment: DRAEM's augmentation of the texture (three random operations); False pastes
            the texture as it is.
        prob: probability of planting.
    """

    def __init__(self, textures: Sequence | None = None, threshold: float = PERLIN_THRESHOLD,
                 blend_range: tuple[float, float] = BLEND_RANGE, augment: bool = True, prob: float = 1.0) -> None:
        super().__init__(prob)
        if not 0.0 <= blend_range[0] <= blend_range[1] < 1.0:
            msg = f"blend_range must satisfy 0 <= low <= high < 1 (beta = 1 would change nothing), got {blend_range}"
            raise ValueError(msg)
        self.textures, self.threshold, self.blend_range = textures, threshold, tuple(blend_range)
        self.augment = augment
        self.operations: tuple[str, ...] = ()  # the texture operations of the latest anomaly

    @classmethod
    def for_training(cls, modality: str | dict = "auto", textures: Sequence | None = None) -> RandPerlinAnomaly:
        return cls(textures)

    def _texture(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A texture (C, H, W) in the units of ``image``."""
        c, h, w = image.shape
        if self.textures is not None and len(self.textures) > 0:
            source = to_numpy(_texture_image(self.textures[int(rng.integers(len(self.textures)))]))
            if source.shape[1:] != (h, w):
                source = F.interpolate(torch.from_numpy(source)[None], size=(h, w), mode="bilinear",
                                       align_corners=False)[0].numpy()
        else:
            shift = (int(rng.integers(h // 4, 3 * h // 4 + 1)), int(rng.integers(w // 4, 3 * w // 4 + 1)))
            source = np.roll(image[:, ::-1, ::-1], shift, axis=(1, 2))
        if source.shape[0] != c:  # gray texture in a colour image, or the reverse
            source = np.repeat(source.mean(axis=0, keepdims=True), c, axis=0)
        lo, hi = robust_range(image)
        t_lo, t_hi = robust_range(source)
        unit = (np.clip(source, t_lo, t_hi) - t_lo) / (t_hi - t_lo)  # (C, H, W) in [0, 1]
        self.operations = ()
        if self.augment:
            unit, self.operations = augment_texture(unit, rng)
        return lo + unit * (hi - lo)

    def plant(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        region = perlin_region(image.shape[1:], rng, self.threshold)
        beta = float(rng.uniform(*self.blend_range))
        texture = self._texture(image, rng)
        return np.where(region[None], (1 - beta) * texture + beta * image, image), region


class RandPerlinAnomalyd(RandAnomalyd):
    """Dictionary twin of :class:`RandPerlinAnomaly` (writes image, exact mask and label).

    Args:
        keys: the image key.
        textures, threshold, blend_range, augment: see :class:`RandPerlinAnomaly`.
        prob: probability of planting an anomaly in a normal sample.
        mask_key, label_key, allow_missing_keys: see :class:`aaclip_med.anomalies.base.RandAnomalyd`.
    """

    def __init__(self, keys: KeysCollection = Keys.IMAGE, textures: Sequence | None = None,
                 threshold: float = PERLIN_THRESHOLD, blend_range: tuple[float, float] = BLEND_RANGE,
                 augment: bool = True, prob: float = 1.0, mask_key: str = Keys.MASK, label_key: str = Keys.LABEL,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, RandPerlinAnomaly(textures, threshold, blend_range, augment), prob, mask_key,
                         label_key, allow_missing_keys)
