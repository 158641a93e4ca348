"""Shape and normalisation steps after the modality preset: 3 channels, binary masks, CLIP stats."""

from __future__ import annotations

import torch
from monai.config import KeysCollection
from monai.transforms import NormalizeIntensity, Transform
from monai.utils import TransformBackends

from .map_array import MapArrayTransform

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "ToThreeChannels",
    "ToThreeChannelsd",
    "ClipNormalize",
    "ClipNormalized",
    "BinarizeMask",
    "BinarizeMaskd",
]

# OpenAI CLIP / open_clip image statistics (spec section 1)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ToThreeChannels(Transform):
    """(1, H, W) gray -> (3, H, W) by repetition; (3, H, W) unchanged; (4, H, W) drops alpha."""

    backend = [TransformBackends.TORCH]

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        channels = img.shape[0]
        if channels == 3:
            return img
        if channels == 1:
            return img.repeat(3, *([1] * (img.ndim - 1)))
        if channels == 4:
            return img[:3]
        msg = f"expected 1, 3 or 4 channels, got {channels} (shape {tuple(img.shape)})"
        raise ValueError(msg)


class ClipNormalize(Transform):
    """Clamp a (3, H, W) image to [0, 1] (bicubic resizing overshoots) and apply CLIP mean/std."""

    backend = [TransformBackends.TORCH]

    def __init__(self, mean: tuple[float, ...] = CLIP_MEAN, std: tuple[float, ...] = CLIP_STD) -> None:
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            msg = f"need 3 means and 3 positive stds, got mean={mean}, std={std}"
            raise ValueError(msg)
        self.normalizer = NormalizeIntensity(subtrahend=list(mean), divisor=list(std), channel_wise=True)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return self.normalizer(img.clamp(0.0, 1.0))


class BinarizeMask(Transform):
    """`mask != 0` as float32 {0, 1}; applied after nearest resizing (spec section 1)."""

    backend = [TransformBackends.TORCH]

    def __call__(self, mask: torch.Tensor) -> torch.Tensor:
        return (mask != 0).float()


class ToThreeChannelsd(MapArrayTransform):
    """Dictionary twin of :class:`ToThreeChannels`. Args: keys, allow_missing_keys."""

    backend = ToThreeChannels.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.inner = ToThreeChannels()


class ClipNormalized(MapArrayTransform):
    """Dictionary twin of :class:`ClipNormalize`. Args: keys, mean, std, allow_missing_keys."""

    backend = ClipNormalize.backend

    def __init__(self, keys: KeysCollection, mean=CLIP_MEAN, std=CLIP_STD, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.inner = ClipNormalize(mean, std)


class BinarizeMaskd(MapArrayTransform):
    """Dictionary twin of :class:`BinarizeMask`. Args: keys, allow_missing_keys."""

    backend = BinarizeMask.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.inner = BinarizeMask()
