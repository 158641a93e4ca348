"""Training augmentation of spec sections 7 and 8, as seeded MONAI random transforms.

Geometry (image and mask together, each with p = 0.5): rotation up to 30 degrees, translation up
to 15 % of the size, horizontal flip, vertical flip. Stage 2 adds colour jitter on the image only
(brightness, contrast, saturation 0.5, each applied with p = 0.7).

Where each step sits follows the published runs (see :func:`aaclip_med.data.pipeline.training_transforms`):
colour jitter on the source image before resizing; geometry on the CLIP-normalised S x S image
and mask, with nearest-neighbour sampling and zero padding. A zero of a normalised image is the
CLIP mean colour, so rotated and shifted images are padded with the mean colour, not black, and
nearest sampling keeps every image pixel a source pixel (and the mask binary).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandAffined, RandFlipd, RandomizableTransform, RandRotated
from monai.utils import TransformBackends, convert_to_dst_type
from torchvision.transforms.v2 import functional as tvf

__all__ = [
    "RandColorJitter",
    "RandColorJitterd",
    "colour_transforms",
    "geometric_transforms",
    "ROTATION_DEGREES",
    "TRANSLATION_FRACTION",
    "GEOMETRY_PROB",
    "JITTER_STRENGTH",
    "JITTER_PROB",
]

# spec sections 7 and 8 (the published runs' torchvision settings)
ROTATION_DEGREES = 30.0
TRANSLATION_FRACTION = 0.15
GEOMETRY_PROB = 0.5  # of the rotation, the translation and each flip
JITTER_STRENGTH = 0.5  # brightness, contrast and saturation
JITTER_PROB = 0.7  # of each of the three adjustments


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


def colour_transforms(stage: int, image_key: str = "image") -> list:
    """Stage 2's colour jitter on a (3, H, W) image in [0, 1]; nothing for Stage 1.

    Args:
        stage: 1 or 2.
        image_key: key of the image (the mask is never jittered).
    """
    _check_stage(stage)
    if stage == 1:
        return []
    s = JITTER_STRENGTH
    return [RandColorJitterd(image_key, brightness=s, contrast=s, saturation=s, prob=JITTER_PROB)]


def geometric_transforms(image_size: int, image_key: str = "image", mask_key: str = "mask") -> list:
    """Rotation, translation and flips of a normalised (3, S, S) image and its (1, S, S) mask.

    Both keys are sampled nearest-neighbour and padded with zeros (the CLIP mean colour of a
    normalised image), as the published runs' torchvision transforms on the stacked tensor.

    Args:
        image_size: S, the side in pixels (the translation is 15 % of it).
        image_key: key of the image.
        mask_key: key of the mask, moved with the image.
    """
    keys, shift = [image_key, mask_key], TRANSLATION_FRACTION * image_size
    p = GEOMETRY_PROB
    return [
        RandRotated(keys, range_x=math.radians(ROTATION_DEGREES), prob=p, mode="nearest", padding_mode="zeros",
                    keep_size=True),
        RandAffined(keys, prob=p, translate_range=(shift, shift), mode="nearest", padding_mode="zeros"),
        RandFlipd(keys, prob=p, spatial_axis=1),  # horizontal: flips W
        RandFlipd(keys, prob=p, spatial_axis=0),  # vertical: flips H
    ]


def _check_stage(stage: int) -> None:
    if stage not in (1, 2):
        msg = f"stage must be 1 or 2, got {stage}"
        raise ValueError(msg)
