"""Resizing to the model's S x S input, as the published runs resized (spec section 1).

Images from 8-bit files (photos, endoscopy, 8-bit medical PNGs such as BMAD's) are resized with
PIL's BICUBIC on uint8 pixels, exactly as the published runs did: kernel a = -0.5, antialiased
when shrinking, every output rounded to uint8. MONAI's bicubic (a = -0.75, no antialias) differs
from it by up to 1.25 after CLIP normalisation on real photos. Other sources (DICOM, NIfTI,
16-bit images, already windowed to [0, 1] floats) keep MONAI's bicubic: there is no published
pipeline to match and no 8-bit grid to round to.

Masks are resized with PIL's NEAREST (see :func:`aaclip_med.data.masks.resize_mask`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import Resize, Transform
from monai.utils import TransformBackends
from PIL import Image

from .intensity import is_8bit_source
from .map_array import MapArrayTransform
from .masks import resize_mask

__all__ = ["is_8bit_source", "ResizeImage", "ResizeImaged", "ResizeMask", "ResizeMaskd"]

logger = logging.getLogger(__name__)


def _pil_bicubic(img: torch.Tensor, size: int) -> torch.Tensor:
    """(C, H, W) in [0, 1] on the 1/255 grid -> (C, S, S), through uint8 and PIL BICUBIC."""
    pixels = (img.detach().cpu().float() * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
    if pixels.shape[0] == 3:  # one RGB resize: PIL resizes the channels independently
        rgb = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)), "RGB").resize((size, size), Image.BICUBIC)
        out = np.asarray(rgb).transpose(2, 0, 1)
    else:
        out = np.stack([np.asarray(Image.fromarray(p).resize((size, size), Image.BICUBIC)) for p in pixels])
    return torch.from_numpy(np.ascontiguousarray(out)).float() / 255.0


def _side(size: int) -> int:
    if int(size) < 1:
        msg = f"image_size must be >= 1 pixel, got {size}"
        raise ValueError(msg)
    return int(size)


def _with_meta(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return MetaTensor(out, meta=dict(like.meta)) if isinstance(like, MetaTensor) else out


class ResizeImage(Transform):
    """Resize a (C, H, W) image in [0, 1] to (C, S, S).

    8-bit sources (see :func:`is_8bit_source`) go through PIL BICUBIC on uint8, others through
    MONAI's bicubic. Meta (MetaTensor) is kept.

    Args:
        size: S in pixels.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, size: int) -> None:
        self.size = _side(size)
        self.fallback = Resize((self.size, self.size), mode="bicubic")

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """Args: img: (C, H, W), values in [0, 1]."""
        if not is_8bit_source(img):
            return self.fallback(img)
        return _with_meta(_pil_bicubic(img, self.size), img)


class ResizeMask(Transform):
    """Resize a (1, H, W) binary mask to (1, S, S) with PIL NEAREST; {0, 1} float32 out, meta kept.

    Args:
        size: S in pixels.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, size: int) -> None:
        self.size = _side(size)

    def __call__(self, mask: torch.Tensor) -> torch.Tensor:
        """Args: mask: (C, H, W), non-zero = anomalous."""
        return _with_meta(resize_mask(mask, (self.size, self.size)).float(), mask)


class ResizeImaged(MapArrayTransform):
    """Dictionary twin of :class:`ResizeImage`. Args: keys, size, allow_missing_keys."""

    backend = ResizeImage.backend

    def __init__(self, keys: KeysCollection, size: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.inner = ResizeImage(size)


class ResizeMaskd(MapArrayTransform):
    """Dictionary twin of :class:`ResizeMask`. Args: keys, size, allow_missing_keys."""

    backend = ResizeMask.backend

    def __init__(self, keys: KeysCollection, size: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.inner = ResizeMask(size)
