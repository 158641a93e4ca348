"""The one mask rule and the one mask reader, for training, inference with masks and evaluation.

Rule (spec section 9): a pixel is anomalous where the mask is non-zero, except in lossy files
(JPEG, e.g. Kvasir-SEG's original release), where it is anomalous above 127: JPEG rings leave
small non-zero values around every edge and in flat black areas. A mask may store any number of
distinct non-zero values (VisA's masks hold defect ids such as {0, 1, 3}); all of them are
anomalous.

Plain image masks are read as the published runs read them: PIL, ``convert("L")`` (palette and
colour masks become luminance), then the rule. NIfTI and DICOM masks go through
:func:`aaclip_med.data.loading.load_image` (and are cut at `slice_index` as their images are);
they are lossless, so non-zero counts.

Resizing a mask to the model's input uses PIL's own NEAREST resize, as the published runs did:
it picks source pixel ``floor((x + 0.5) * in / out)`` in fixed-point arithmetic, so torch's
``nearest-exact`` (the same formula in floating point) differs from it at a few rows or columns
of most sizes (e.g. 2 of 518 columns for a 1000-pixel side).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import DataError
from .loading import DEFAULT_MAX_PIXELS, check_pixel_limit, load_image, source_kind
from .slicing import SliceVolume

__all__ = ["LOSSY_THRESHOLD", "mask_is_lossy", "mask_foreground", "read_mask", "resize_mask"]

logger = logging.getLogger(__name__)

# anomalous above this value in lossy files (8-bit scale); non-zero in lossless ones
LOSSY_THRESHOLD = 127
_LOSSY_FORMATS = ("JPEG", "MPO")


def mask_is_lossy(image: Image.Image) -> bool:
    """Whether a PIL image was stored with lossy compression (JPEG, or TIFF with JPEG inside)."""
    if image.format in _LOSSY_FORMATS:
        return True
    return image.format == "TIFF" and str(image.info.get("compression", "")).lower() in ("jpeg", "tiff_jpeg")


def mask_foreground(values: np.ndarray | torch.Tensor, lossy: bool) -> torch.Tensor:
    """The mask rule on gray values: ``> 127`` for lossy files, ``!= 0`` otherwise.

    Args:
        values: (H, W) or (C, H, W) gray values (several channels: anomalous where any is).
        lossy: whether the values were decoded from a lossy file.

    Returns:
        bool tensor of the same spatial shape, (1, H, W) for 3D input.
    """
    data = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values)
    hit = data > LOSSY_THRESHOLD if lossy else data != 0
    return hit.any(0, keepdim=True) if hit.ndim == 3 else hit


def _read_plain_mask(path: Path, max_pixels: int | None) -> torch.Tensor:
    check_pixel_limit(path, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                lossy = mask_is_lossy(image)
                gray = np.array(image.convert("L"))
    except OSError as err:
        raise DataError(path, f"cannot be read as a mask image ({err})") from err
    return mask_foreground(gray, lossy)[None]


def read_mask(
    path: str | PathLike,
    slice_index: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    load_volume: Callable[[Path], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Read a ground-truth mask and apply the mask rule.

    Args:
        path: a plain image (PNG, JPEG, TIFF, BMP), a NIfTI file or a DICOM file/series.
        slice_index: for a volume, the slice along the acquisition axis (as the manifest's
            `slice_index`; the image is cut at the same index).
        max_pixels: largest plain image decoded (see :func:`aaclip_med.data.loading.load_image`).
        load_volume: reads a NIfTI/DICOM mask (default :func:`~aaclip_med.data.loading.load_image`),
            e.g. a :class:`~aaclip_med.data.cache.VolumeCache` getter so that the slice records of
            one case decode their mask volume once.

    Returns:
        (1, H, W) float32 tensor of {0, 1}.

    Raises:
        DataError: the file is missing, unreadable, or a volume without a valid `slice_index`.
    """
    path = Path(path)
    if source_kind(path) == "image":
        return _read_plain_mask(path, max_pixels).float()
    volume = (load_volume or load_image)(path)
    if volume.ndim == 4:
        if slice_index is None:
            raise DataError(path, "is a volume; the manifest line needs a 'slice_index' to cut its mask")
        volume = SliceVolume()(volume, indices=[int(slice_index)])[0]
    return mask_foreground(volume.as_tensor(), lossy=False).float()


def resize_mask(mask: torch.Tensor | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Resize a binary mask with PIL's NEAREST (exactly as the published runs resized theirs).

    Args:
        mask: (H, W) or (C, H, W) binary mask (non-zero = anomalous).
        size: (height, width) out.

    Returns:
        bool tensor at `size`, same rank as given.
    """
    data = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask) != 0
    height, width = (int(s) for s in size)
    planes = data.reshape(-1, *data.shape[-2:])  # (N, H, W)
    out = np.stack([
        np.asarray(Image.fromarray(plane.astype(np.uint8)).resize((width, height), Image.NEAREST)) != 0
        for plane in planes
    ])
    return torch.from_numpy(out.reshape(*data.shape[:-2], height, width))
