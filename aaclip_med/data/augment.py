"""Training augmentation of spec sections 7 and 8, as seeded MONAI random transforms.

Geometry (image and mask together, each with p = 0.5): rotation up to 30 degrees, translation up
to 15 % of the size, horizontal flip, vertical flip. Stage 2 adds colour jitter on the image only
(brightness, contrast, saturation 0.5, each applied with p = 0.7).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandAffined, RandFlipd, RandomizableTransform, RandRotated
from monai.utils import TransformBackends, convert_to_dst_type
from torchvision.transforms.v2 import functional as tvf

__all__ = ["RandColorJitter", "RandColorJitterd", "augmentation_transforms"]


class RandColorJitter(RandomizableTransform):
    """Random brightness, contrast and saturation of a (3, H, W) image in [0, 1].

    Each factor is drawn uniformly from [max(0, 1 - s), 1 + s] and each adjustment is applied on
    its own with probability `prob` (spec section 8), in the order brightness, contrast,
    saturation.

    Args:
        brightness: strength s of the brightness jitter.
        contrast: strength s of the contrast jitter.
        saturation: strength s of the saturation jitter.
        prob: probability of each adjustment.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, brightness: float = 0.5, contrast: float = 0.5, saturation: float = 0.5, prob: float = 0.7) -> None:
        strengths = {"brightness": brightness, "contrast": contrast, "saturation": saturation}
        if min(strengths.values()) < 0 or not 0.0 <= prob <= 1.0:
            msg = f"jitter strengths must be >= 0 and prob in [0, 1], got {strengths}, prob={prob}"
            raise ValueError(msg)
        super().__init__(prob=1.0)  # the per-adjustment probability is drawn in randomize()
        self.strengths, self.adjust_prob = strengths, prob
        self.factors: dict[str, float] = {}

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self.factors = {}
        for name, s in self.strengths.items():
            apply = self.R.rand() < self.adjust_prob
            factor = self.R.uniform(max(0.0, 1.0 - s), 1.0 + s)  # drawn always: stable random stream
            if apply and s > 0:
                self.factors[name] = float(factor)

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        if randomize:
            self.randomize()
        out = torch.as_tensor(img).as_subclass(torch.Tensor).float()
        adjust = {"brightness": tvf.adjust_brightness, "contrast": tvf.adjust_contrast, "saturation": tvf.adjust_saturation}
        for name, factor in self.factors.items():
            out = adjust[name](out, factor)
        return convert_to_dst_type(out, img)[0]


class RandColorJitterd(RandomizableTransform, MapTransform):
    """Dictionary twin of :class:`RandColorJitter`; one draw serves all keys.

    Args:
        keys: image keys (never the mask).
        brightness, contrast, saturation, prob: see :class:`RandColorJitter`.
        allow_missing_keys: skip absent keys.
    """

    backend = RandColorJitter.backend

    def __init__(
        self,
        keys: KeysCollection,
        brightness: float = 0.5,
        contrast: float = 0.5,
        saturation: float = 0.5,
        prob: float = 0.7,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.jitter = RandColorJitter(brightness, contrast, saturation, prob)

    def set_random_state(self, seed=None, state=None) -> RandColorJitterd:
        super().set_random_state(seed, state)
        self.jitter.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.jitter.randomize()
        for key in self.key_iterator(d):
            d[key] = self.jitter(d[key], randomize=False)
        return d


def augmentation_transforms(stage: int, image_size: int, image_key: str = "image", mask_key: str = "mask") -> list:
    """The random transforms of Stage 1 or 2 for (3, S, S) images in [0, 1] and (1, S, S) masks.

    Args:
        stage: 1 (geometry only) or 2 (geometry + colour jitter).
        image_size: S, the side in pixels (translation is 15 % of it).
        image_key: key of the image.
        mask_key: key of the mask, moved with the image with nearest interpolation.
    """
    if stage not in (1, 2):
        msg = f"stage must be 1 or 2, got {stage}"
        raise ValueError(msg)
    keys, modes = [image_key, mask_key], ("bilinear", "nearest")
    shift = 0.15 * image_size
    steps = [
        RandRotated(keys, range_x=math.radians(30), prob=0.5, mode=modes, padding_mode="zeros", keep_size=True),
        RandAffined(keys, prob=0.5, translate_range=(shift, shift), mode=modes, padding_mode="zeros"),
        RandFlipd(keys, prob=0.5, spatial_axis=1),  # horizontal: flips W
        RandFlipd(keys, prob=0.5, spatial_axis=0),  # vertical: flips H
    ]
    if stage == 2:
        steps.append(RandColorJitterd(image_key, brightness=0.5, contrast=0.5, saturation=0.5, prob=0.7))
    return steps
