"""What every synthetic-anomaly transform shares: the exact-mask rule, retries, the dictionary twin.

Contract of every generator here: the returned mask is exactly the set of pixels whose value
(in any channel) differs from the input, and it is never empty unless the generator found no
place for an anomaly (an image without foreground, for a lesion). Tests rely on it, and it is what
makes synthetic masks trustworthy ground truth. Generators work on one (C, H, W) slice in the
units it was loaded in (HU for CT), before any intensity window.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import NamedTuple

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type

from aaclip_med.keys import Keys

__all__ = ["SyntheticAnomaly", "RandAnomaly", "RandAnomalyd", "robust_range", "to_numpy", "MAX_TRIES"]

MAX_TRIES = 5  # draws before a generator gives up on a sample (it then stays normal)


class SyntheticAnomaly(NamedTuple):
    """An image with a planted anomaly."""

    image: torch.Tensor  # (C, H, W), type and meta of the input, float32 values
    mask: torch.Tensor  # (1, H, W) float {0, 1}: 1 exactly where the image changed


def to_numpy(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, H, W) float64 copy of an image tensor or array."""
    return np.asarray(torch.as_tensor(img).detach().cpu().as_subclass(torch.Tensor).double())


def robust_range(values: np.ndarray) -> tuple[float, float]:
    """Percentiles 1 and 99 of ``values`` (a range that one hot pixel cannot stretch), never equal."""
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, [1.0, 99.0]))
    return lo, hi if hi > lo else lo + 1.0


def exact(clean: np.ndarray, changed: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``changed`` inside ``mask`` only, in float32, and shrink the mask to the pixels that differ.

    Args:
        clean, changed: (C, H, W) float arrays.
        mask: (H, W) bool.

    Returns:
        ((C, H, W) float32 image, (H, W) bool mask), the mask True exactly where a channel differs.
    """
    clean32, changed32 = clean.astype(np.float32), changed.astype(np.float32)
    out = np.where(mask[None], changed32, clean32)
    return out, (out != clean32).any(axis=0)


class RandAnomaly(RandomizableTransform):
    """Base of the array transforms: ``img (C, H, W) -> SyntheticAnomaly``.

    Subclasses implement :meth:`plant` with a numpy Generator drawn from ``self.R``; a draw whose
    mask comes out empty is retried up to :data:`MAX_TRIES` times. With probability ``1 - prob``
    (or when every try is empty) the image comes back unchanged with an empty mask.

    Args:
        prob: probability of planting an anomaly.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, prob: float = 1.0) -> None:
        if not 0.0 <= prob <= 1.0:
            msg = f"prob must be in [0, 1], got {prob}"
            raise ValueError(msg)
        super().__init__(prob=prob)
        self._rng = np.random.default_rng(0)
        self.meta: dict = {}  # meta of the image being planted (e.g. what ``auto`` reads to pick a preset)

    def randomize(self, data=None) -> None:
        super().randomize(None)
        # one numpy Generator per call, drawn from self.R, so set_random_state fixes everything
        self._rng = np.random.default_rng(int(self.R.randint(0, 2**31 - 1)))

    def plant(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(changed (C, H, W) float64, region (H, W) bool) for one draw; override."""
        raise NotImplementedError

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> SyntheticAnomaly:
        if randomize:
            self.randomize()
        self.meta = dict(getattr(img, "meta", None) or {})
        clean = to_numpy(img)
        out, mask = clean.astype(np.float32), np.zeros(clean.shape[1:], bool)
        if self._do_transform:
            for _ in range(MAX_TRIES):
                out, mask = exact(clean, *self.plant(clean, self._rng))
                if mask.any():
                    break
        image = convert_to_dst_type(torch.from_numpy(out), img, dtype=torch.float32)[0]
        mask_t = torch.from_numpy(mask[None].astype(np.float32))
        if isinstance(img, MetaTensor):
            mask_t = MetaTensor(mask_t, meta=dict(img.meta))
        return SyntheticAnomaly(image, mask_t)


class RandAnomalyd(RandomizableTransform, MapTransform):
    """Base of the dictionary twins: writes the image, the exact mask and the label.

    Samples that are already anomalous (label > 0.5, a real lesion with its own mask) pass through
    unchanged: a synthetic anomaly would leave the real one out of the mask. A sample that gets an
    anomaly has ``label`` 1.0 and ``mask`` (1, H, W) exactly on the changed pixels; the others keep
    their (empty) mask.

    Args:
        keys: the image key (one key).
        transform: the array transform (its ``prob`` is 1; the twin owns ``prob``).
        prob: probability of planting an anomaly in a normal sample.
        mask_key, label_key: where the mask and label go.
        allow_missing_keys: skip a missing image key.
    """

    backend = RandAnomaly.backend

    def __init__(self, keys: KeysCollection, transform: RandAnomaly, prob: float, mask_key: str = Keys.MASK,
                 label_key: str = Keys.LABEL, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=prob)
        if len(self.keys) != 1:
            msg = f"synthetic anomalies go into one image key, got {self.keys}"
            raise ValueError(msg)
        self.transform, self.mask_key, self.label_key = transform, mask_key, label_key

    def set_random_state(self, seed=None, state=None) -> RandAnomalyd:
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed=int(self.R.randint(0, 2**31 - 1)))
        return self

    def choose(self, data: Mapping[Hashable, object]) -> RandAnomaly:
        """The array transform for this sample (the dispatcher overrides it)."""
        return self.transform

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        self.randomize(None)
        transform = self.choose(d)  # drawn every call: the random stream does not depend on the data
        if not self._do_transform or float(d.get(self.label_key, 0.0)) > 0.5:
            return d
        for key in self.key_iterator(d):
            result = transform(d[key])
            if bool(result.mask.any()):
                d[key], d[self.mask_key], d[self.label_key] = result.image, result.mask, 1.0
        return d
