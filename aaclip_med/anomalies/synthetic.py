"""One transform for normal-only training: a normal sample becomes anomalous with probability ``p``.

:class:`RandSyntheticAnomalyd` draws, per sample, whether to plant (probability ``prob``) and which
of the chosen kinds (uniformly), then runs that generator. It sits before the modality preset in
:func:`aaclip_med.data.pipeline.training_transforms`, so every kind works in the units the slice was
loaded in (HU for CT) and the intensity window comes after, as for a real lesion. Seeded through
``set_random_state`` like any MONAI random transform: training seeds it per (seed, epoch, sample
index), so a resumed run plants the same anomalies.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.config import KeysCollection

from aaclip_med.keys import Keys

from .base import RandAnomaly, RandAnomalyd
from .kinds import DEFAULT_PROBABILITY, generator_class, parse_kinds

__all__ = ["RandSyntheticAnomalyd", "synthetic_transform", "generator_for"]


def generator_for(kind: str, modality: str | dict = "auto", textures: Sequence | None = None) -> RandAnomaly:
    """The array transform of one registered kind with its training defaults (:mod:`aaclip_med.anomalies.kinds`)."""
    return generator_class(kind).for_training(modality, textures)


class RandSyntheticAnomalyd(RandAnomalyd):
    """Plant one of ``kinds`` in a normal sample with probability ``prob``; write image, mask, label.

    Samples already anomalous pass unchanged (see :class:`aaclip_med.anomalies.base.RandAnomalyd`).

    Args:
        keys: the image key.
        kinds: generator names, e.g. ``("perlin", "cutpaste")`` or ``"perlin,cutpaste"``.
        prob: probability that a normal sample becomes anomalous (default: DRAEM's 0.5).
        modality: preset of the images (lesion offsets: HU for CT, relative otherwise).
        textures: training samples the Perlin kind takes its textures from (None: the image itself).
        mask_key, label_key, allow_missing_keys: where mask and label go; skip a missing key.
    """

    def __init__(self, keys: KeysCollection = Keys.IMAGE, kinds: Sequence[str] | str = ("perlin", "cutpaste"),
                 prob: float = DEFAULT_PROBABILITY, modality: str | dict = "auto", textures: Sequence | None = None,
                 mask_key: str = Keys.MASK, label_key: str = Keys.LABEL, allow_missing_keys: bool = False) -> None:
        self.kinds = parse_kinds(kinds)
        self.generators = {k: generator_for(k, modality, textures) for k in self.kinds}
        super().__init__(keys, self.generators[self.kinds[0]], prob, mask_key, label_key, allow_missing_keys)
        self.kind: str = self.kinds[0]

    def set_random_state(self, seed=None, state=None) -> RandSyntheticAnomalyd:
        super().set_random_state(seed, state)
        for kind in self.kinds:  # each generator gets its own stream, in a fixed order
            self.generators[kind].set_random_state(seed=int(self.R.randint(0, 2**31 - 1)))
        return self

    def choose(self, data: Mapping[Hashable, object]) -> RandAnomaly:
        self.kind = self.kinds[int(self.R.randint(len(self.kinds)))]
        return self.generators[self.kind]


def synthetic_transform(kinds: Sequence[str] | str, probability: float = DEFAULT_PROBABILITY,
                        modality: str | dict = "auto", textures: Sequence | None = None) -> RandSyntheticAnomalyd:
    """:class:`RandSyntheticAnomalyd` on the image, mask and label keys of the pipeline."""
    return RandSyntheticAnomalyd(Keys.IMAGE, kinds, probability, modality, textures)
