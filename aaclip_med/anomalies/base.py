"""What every synthetic-anomaly generator shares: the exact-mask rule, retries, the dictionary twin.

Contract of every generator here: the returned mask is exactly the set of pixels whose value
(in any channel) differs from the input, and it is never empty unless the generator found no
place for an anomaly (an image without foreground, for a lesion). Tests rely on it, and it is what
makes synthetic masks trustworthy ground truth. Generators work on one (C, *spatial) array in the
units it was loaded in (HU for CT), before any intensity window; training gives them (C, H, W)
slices, the bundled sample also whole (1, X, Y, Z) volumes and (3, H, W) uint8 photos.

A new kind is a subclass of :class:`RandAnomaly` in its own module (it implements
:meth:`RandAnomaly.plant`) plus one line in :data:`aaclip_med.anomalies.kinds.SYNTHETIC_KINDS`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type

from aaclip_med.keys import Keys

__all__ = ["SyntheticAnomaly", "RandAnomaly", "RandAnomalyd", "SyntheticLabeld", "exact", "robust_range",
           "to_numpy", "MAX_TRIES"]

MAX_TRIES = 5  # draws before a generator gives up on a sample (it then stays normal)


class SyntheticAnomaly(NamedTuple):
    """An image with a planted anomaly (tensors from the transforms, numpy arrays from :meth:`RandAnomaly.plant_array`)."""

    image: torch.Tensor | np.ndarray  # (C, *spatial): type and meta of the input; float32 (tensors) or the input dtype
    mask: torch.Tensor | np.ndarray  # (1, *spatial): 1 exactly where the image changed (float tensor, bool array)


def to_numpy(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, H, W) float64 copy of an image tensor or array."""
    return np.asarray(torch.as_tensor(img).detach().cpu().as_subclass(torch.Tensor).double())


def robust_range(values: np.ndarray) -> tuple[float, float]:
    """Percentiles 1 and 99 of ``values`` (a range that one hot pixel cannot stretch), never equal."""
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, [1.0, 99.0]))
    return lo, hi if hi > lo else lo + 1.0


def exact(clean: np.ndarray, changed: np.ndarray, region: np.ndarray, dtype: np.dtype | type | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """The one exact-mask rule: keep ``changed`` inside ``region`` only, in ``dtype``, and mask what differs.

    Integer outputs are rounded and clipped to the type's range first, so a pixel whose change
    rounds away (a dark scratch on a black pixel) is left out of the mask rather than counted.

    Args:
        clean, changed: (C, *spatial) arrays (``changed`` in float).
        region: (*spatial) bool, where the generator changed the image.
        dtype: of the output; None: the dtype of ``clean``.

    Returns:
        ((C, *spatial) image in ``dtype``, (*spatial) bool mask), the mask True exactly where a
        channel of the image differs from ``clean`` (in ``dtype``).
    """
    dtype = np.dtype(dtype or clean.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        changed = np.clip(np.rint(changed), info.min, info.max)
    before, after = clean.astype(dtype), changed.astype(dtype)
    out = np.where(region[None], after, before)
    return out, (out != before).any(axis=0)


class RandAnomaly(RandomizableTransform):
    """Base of the generators: ``img (C, H, W) -> SyntheticAnomaly``.

    Subclasses implement :meth:`plant` with a numpy Generator; a draw whose mask comes out empty is
    retried up to :data:`MAX_TRIES` times. With probability ``1 - prob`` (or when every try is
    empty) the image comes back unchanged with an empty mask. :meth:`for_training` builds a kind
    from the settings of a training run (its modality and the images textures may come from).

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

    @classmethod
    def for_training(cls, modality: str | dict = "auto", textures: Sequence | None = None) -> RandAnomaly:
        """The kind with its defaults for a training run; kinds that read the modality or textures override it."""
        return cls()

    def randomize(self, data=None) -> None:
        super().randomize(None)
        # one numpy Generator per call, drawn from self.R, so set_random_state fixes everything
        self._rng = np.random.default_rng(int(self.R.randint(0, 2**31 - 1)))

    def plant(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(changed (C, *spatial) float64, region (*spatial) bool) for one draw; override."""
        raise NotImplementedError

    def plant_array(self, image: np.ndarray, rng: np.random.Generator, dtype=None) -> SyntheticAnomaly:
        """Plant in a (C, *spatial) numpy array with ``rng``: exact mask, retried while it comes out empty.

        Returns:
            (image in ``dtype`` (None: the input's), (1, *spatial) bool mask).
        """
        clean = np.asarray(image)
        out, mask = exact(clean, clean.astype(np.float64), np.zeros(clean.shape[1:], bool), dtype)
        for _ in range(MAX_TRIES):
            out, mask = exact(clean, *self.plant(clean.astype(np.float64), rng), dtype)
            if mask.any():
                break
        return SyntheticAnomaly(out, mask[None])

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> SyntheticAnomaly:
        if randomize:
            self.randomize()
        self.meta = dict(getattr(img, "meta", None) or {})
        clean = to_numpy(img).astype(np.float32)
        out, mask = clean, np.zeros((1, *clean.shape[1:]), bool)
        if self._do_transform:
            out, mask = self.plant_array(clean, self._rng)
        image = convert_to_dst_type(torch.from_numpy(out), img, dtype=torch.float32)[0]
        mask_t = torch.from_numpy(mask.astype(np.float32))
        if isinstance(img, MetaTensor):
            mask_t = MetaTensor(mask_t, meta=dict(img.meta))
        return SyntheticAnomaly(image, mask_t)


class RandAnomalyd(RandomizableTransform, MapTransform):
    """Base of the dictionary twins: writes the image, the exact mask, the label and the kind.

    Samples that are already anomalous (label > 0.5, a real lesion with its own mask) pass through
    unchanged: a synthetic anomaly would leave the real one out of the mask. A sample that gets an
    anomaly has ``mask`` (1, H, W) exactly on the changed pixels, ``label`` 1.0 and
    ``Keys.SYNTHETIC`` set to the kind (its registry name where the dispatcher chose it, else the
    generator's class name); the others keep their (empty) mask. Later
    resizing or geometry can shrink a small mask to nothing: :class:`SyntheticLabeld`, the last
    step of a pipeline, decides the label of planted samples again from their final mask.

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
                d[Keys.SYNTHETIC] = getattr(self, "kind", type(transform).__name__)
        return d


class SyntheticLabeld(MapTransform):
    """Label of a planted sample = whether its mask still holds a pixel, after the last geometric step.

    Resizing a source image to S x S (nearest-neighbour mask) or rotating and shifting it can leave
    a small synthetic region with no pixel: the sample then looks normal and is labelled normal.
    Only samples :class:`RandAnomalyd` planted (``Keys.SYNTHETIC`` set) are relabelled; a real
    anomaly keeps the label of its manifest.

    Args:
        keys: the mask key.
        label_key: the label key.
    """

    def __init__(self, keys: KeysCollection = Keys.MASK, label_key: str = Keys.LABEL) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.label_key = label_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        if not d.get(Keys.SYNTHETIC):
            return d
        for key in self.key_iterator(d):
            d[self.label_key] = float(bool(torch.as_tensor(d[key]).any()))
        return d
