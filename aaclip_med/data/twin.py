"""Base of the dictionary twins: apply the wrapped array transform to each selected key."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.transforms import MapTransform

__all__ = ["ArrayTwind"]


class ArrayTwind(MapTransform):
    """Dictionary twin of an array transform held in ``self.inner`` (set by the subclass)."""

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.inner(d[key])
        return d
