"""Intensity transforms of the modality presets; every one maps its input to [0, 1].

Images read from 8-bit files (PNG/JPEG/BMP/TIFF, 0-255, e.g. the BMAD brain MRI, liver CT and
retina OCT slices) are divided by 255 by every preset, CT and MRI included, as the published runs
did: their values are display grey levels, not Hounsfield units or MR signal, so an HU window or
a percentile stretch would only distort them (an abdomen window maps 0-255 to 0.40-1.0). DICOM,
NIfTI and 16-bit images get the preset's own step.

CT windows are in Hounsfield units (HU), given as (level, width): the window keeps
[level - width / 2, level + width / 2] and maps it linearly to [0, 1]. The named windows are
package data (``aaclip_med/configs/modalities/ct_windows.json``, read through
:func:`aaclip_med.presets.get_ct_window`):

| name         | level (HU) | width (HU) | kept range (HU) |
|--------------|-----------:|-----------:|-----------------|
| abdomen      |         40 |        400 | -160 .. 240     |
| liver        |         30 |        150 | -45 .. 105      |
| brain        |         40 |         80 | 0 .. 80         |
| lung         |       -600 |       1500 | -1350 .. 150    |
| bone         |        400 |       1800 | -500 .. 1300    |
| soft_tissue  |         50 |        350 | -125 .. 225     |
"""

from __future__ import annotations

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import ScaleIntensityRange, Transform
from monai.utils import TransformBackends, convert_to_dst_type

from aaclip_med.presets import get_ct_window, list_ct_windows

from .loading import INTENSITY_MAX
from .map_array import MapArrayTransform

__all__ = [
    "is_8bit_source",
    "get_ct_window",
    "list_ct_windows",
    "CTWindow",
    "CTWindowd",
    "MRINormalize",
    "MRINormalized",
    "ScaleToUnit",
    "ScaleToUnitd",
]


def is_8bit_source(img: torch.Tensor) -> bool:
    """Whether `img` was loaded from an 8-bit plain image file (meta `intensity_max` 255)."""
    meta = getattr(img, "meta", None) or {}
    value = meta.get(INTENSITY_MAX)
    return value is not None and float(value) == 255.0


class CTWindow(Transform):
    """Clip a CT image (HU) to a window and scale it to [0, 1].

    Args:
        window: a name of :func:`list_ct_windows` or a (level, width) pair in HU.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, window: str | tuple[float, float] = "abdomen") -> None:
        if isinstance(window, str):
            window = get_ct_window(window)  # ValueError listing the names when unknown
        level, width = (float(v) for v in window)
        if width <= 0:
            msg = f"CT window width must be > 0 HU, got {width}"
            raise ValueError(msg)
        self.level, self.width = level, width
        self.scaler = ScaleIntensityRange(a_min=level - width / 2, a_max=level + width / 2, b_min=0.0, b_max=1.0, clip=True)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """Args: img: (C, H, W) or (C, X, Y, Z) in HU (an 8-bit image file: divided by 255 instead)."""
        if is_8bit_source(img):
            return ScaleToUnit(255.0)(img)  # grey levels, not HU or MR signal
        return self.scaler(img)


class MRINormalize(Transform):
    """Percentile clipping over the foreground, then scaling to [0, 1]; background stays 0.

    MR intensities have no absolute scale and large zero backgrounds, so percentiles over all
    voxels would be dominated by air; they are taken over voxels above `background`.

    Args:
        lower: lower percentile (0-100) of the foreground mapped to 0.
        upper: upper percentile (0-100) of the foreground mapped to 1.
        background: voxels <= this are background; None uses the image minimum.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, lower: float = 1.0, upper: float = 99.0, background: float | None = None) -> None:
        if not 0.0 <= lower < upper <= 100.0:
            msg = f"need 0 <= lower < upper <= 100, got lower={lower}, upper={upper}"
            raise ValueError(msg)
        self.lower, self.upper, self.background = lower, upper, background

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """Args: img: (C, H, W) or (C, X, Y, Z), any unit (an 8-bit image file: divided by 255 instead)."""
        if is_8bit_source(img):
            return ScaleToUnit(255.0)(img)  # grey levels, not HU or MR signal
        data = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
        data = data.float()
        background = float(data.min()) if self.background is None else self.background
        foreground = data > background
        if not bool(foreground.any()):  # an all-background slice: nothing to normalise
            return convert_to_dst_type(torch.zeros_like(data), img, dtype=torch.float32)[0]
        values = data[foreground]
        low, high = (torch.quantile(values, q / 100.0).item() for q in (self.lower, self.upper))
        scaled = ((data - low) / max(high - low, 1e-8)).clamp(0.0, 1.0) * foreground
        return convert_to_dst_type(scaled, img, dtype=torch.float32)[0]


class ScaleToUnit(Transform):
    """Divide by the full-scale value of the source (255 for 8 bit, 65535 for 16 bit) into [0, 1].

    The full scale is read from the `intensity_max` meta set by the loader for plain images;
    otherwise it is guessed from the data (<= 1: already unit, <= 255: 8 bit, else 16 bit), and
    images above 65535 are min-max scaled.

    Args:
        full_scale: force the full-scale value instead.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, full_scale: float | None = None) -> None:
        if full_scale is not None and full_scale <= 0:
            msg = f"full_scale must be > 0, got {full_scale}"
            raise ValueError(msg)
        self.full_scale = full_scale

    def _full_scale(self, img: torch.Tensor) -> tuple[float, float]:
        if self.full_scale is not None:
            return 0.0, self.full_scale
        meta_scale = getattr(img, "meta", {}).get(INTENSITY_MAX)
        if meta_scale:
            return 0.0, float(meta_scale)
        high = float(img.max())
        for scale in (1.0, 255.0, 65535.0):
            if high <= scale and float(img.min()) >= 0:
                return 0.0, scale
        return float(img.min()), high

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """Args: img: (C, H, W) gray or RGB."""
        low, high = self._full_scale(img)
        return ((img.float() - low) / max(high - low, 1e-8)).clamp(0.0, 1.0)


class CTWindowd(MapArrayTransform):
    """Dictionary twin of :class:`CTWindow`. Args: keys, window, allow_missing_keys."""

    backend = CTWindow.backend

    def __init__(self, keys: KeysCollection, window: str | tuple[float, float] = "abdomen", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.inner = CTWindow(window)


class MRINormalized(MapArrayTransform):
    """Dictionary twin of :class:`MRINormalize`. Args: keys, lower, upper, background, allow_missing_keys."""

    backend = MRINormalize.backend

    def __init__(
        self,
        keys: KeysCollection,
        lower: float = 1.0,
        upper: float = 99.0,
        background: float | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.inner = MRINormalize(lower, upper, background)


class ScaleToUnitd(MapArrayTransform):
    """Dictionary twin of :class:`ScaleToUnit`. Args: keys, full_scale, allow_missing_keys."""

    backend = ScaleToUnit.backend

    def __init__(self, keys: KeysCollection, full_scale: float | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.inner = ScaleToUnit(full_scale)
