"""Base of the dictionary twins: the wrapped array transform applied to each selected key.

MONAI pairs each array transform with a dictionary one (``ScaleIntensity`` / ``ScaleIntensityd``);
our deterministic ``d`` twins differ only in which array transform they hold, so the loop over
``keys`` lives here once.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.transforms import MapTransform

__all__ = ["MapArrayTransform"]


class MapArrayTransform(MapTransform):
    """Dictionary transform that applies the array transform ``self.inner`` (set by the subclass) to each key."""

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.inner(d[key])
        return d
