"""Modality presets: which intensity steps turn a loaded slice into a [0, 1] image, and ``auto``.

A preset is a plain dict: ``kind`` (ct | mri | oct | endoscopy | photo), its parameters, and the
``domain`` (medical | industrial) that picks the smoothing kernel and image-score rule downstream.
The presets and CT windows are package data (:mod:`aaclip_med.presets`).

``auto`` picks a preset per source (:func:`detect_modality`), in this order:

1. a DICOM source whose Modality attribute has a preset: CT -> ``ct``, MR -> ``mri``,
   OPT/OCT -> ``oct``, ES -> ``endoscopy``, XC -> ``photo``;
2. a plain image (PNG, JPEG, TIFF, BMP): 8 bit -> ``photo`` (industrial domain; pass
   ``--modality`` for a medical photo), 16-bit gray -> ``mri`` (its percentile window: a 16-bit
   container rarely uses its full range);
3. anything else (NIfTI, DICOM of another modality): ``ct`` when at least 1 % of the values are at
   or below -500 (air in Hounsfield units is -1000; MR, PET and OCT values are not strongly
   negative), else ``mri`` (percentiles 1-99 of the foreground: right for any unit-less scale).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from functools import partial
from typing import NamedTuple

import torch
from monai.transforms import CropForegroundd, MapTransform

from aaclip_med.presets import (
    AUTO,
    get_modality,
    list_modalities,
    preset_for_dicom_modality,
    resolve_modality_name,
)

from .intensity import CTWindowd, MRINormalized, ScaleToUnitd
from .loading import DICOM_MODALITY, INTENSITY_MAX

__all__ = [
    "AUTO",
    "AutoModalityd",
    "ModalityChoice",
    "detect_modality",
    "get_modality",
    "list_modalities",
    "preset_transforms",
    "resolve_modality_name",
]

logger = logging.getLogger(__name__)

AIR_HU = -500.0  # values at or below this are air (or padding) in a CT in Hounsfield units
AIR_FRACTION = 0.01  # a source with at least this fraction of air values is taken as CT


class ModalityChoice(NamedTuple):
    """The preset ``auto`` picked for a source, and why (logged and recorded per case)."""

    name: str
    reason: str


def _plain_image_choice(image: torch.Tensor, full_scale: float) -> ModalityChoice:
    if full_scale <= 255:
        return ModalityChoice("photo", "8-bit image: photo preset, industrial domain (pass --modality for a medical image)")
    if image.shape[0] == 1:
        return ModalityChoice("mri", "16-bit gray image: no fixed intensity scale, percentile window (mri preset)")
    return ModalityChoice("photo", "16-bit colour image: photo preset, industrial domain")


def detect_modality(image: torch.Tensor, meta: Mapping | None = None) -> ModalityChoice:
    """The preset ``auto`` picks for one source (rules in the module docstring).

    Args:
        image: the loaded source, (C, H, W) or (C, X, Y, Z), in its own units (HU for CT).
        meta: its meta (default: ``image.meta``); ``dicom_modality`` and ``intensity_max`` are read.
    """
    meta = getattr(image, "meta", {}) if meta is None else meta
    tag = meta.get(DICOM_MODALITY)
    preset = preset_for_dicom_modality(tag)
    if preset:
        return ModalityChoice(preset, f"DICOM Modality {tag}")
    full_scale = meta.get(INTENSITY_MAX)
    if full_scale:
        return _plain_image_choice(image, float(full_scale))
    prefix = f"DICOM Modality {tag} has no preset; " if tag else ""
    values = torch.as_tensor(image).detach()
    air = int((values <= AIR_HU).sum()) / values.numel() if values.numel() else 0.0
    if air >= AIR_FRACTION:
        return ModalityChoice("ct", f"{prefix}{air:.0%} of the values are <= {AIR_HU:g} (air in Hounsfield units): CT")
    return ModalityChoice("mri", f"{prefix}no Hounsfield air (under {AIR_FRACTION:.0%} of the values <= {AIR_HU:g}): "
                                 "percentile window (mri preset)")


class AutoModalityd(MapTransform):
    """Apply the preset :func:`detect_modality` picks for each image (``preset_transforms("auto")``).

    Each call decides on the image it gets; for a volume, decide once on the whole volume with
    :func:`detect_modality` instead and pass the preset name, so that every slice gets the same.

    Args:
        keys: the image key.
        mask_key: a mask cropped with the image (endoscopy frame removal), or None.
    """

    def __init__(self, keys: str, mask_key: str | None = None) -> None:
        super().__init__(keys)
        self.mask_key = mask_key
        self._steps: dict[str, list[MapTransform]] = {}

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        key = self.keys[0]
        choice = detect_modality(d[key])
        logger.debug("modality auto: %s (%s)", choice.name, choice.reason)
        if choice.name not in self._steps:
            self._steps[choice.name] = preset_transforms(choice.name, key, self.mask_key)
        for step in self._steps[choice.name]:
            d = step(d)
        return d


def _brighter_than(img: torch.Tensor, threshold: float) -> torch.Tensor:
    # endoscope frames are near-black in every channel
    return img.mean(dim=0, keepdim=True) > threshold


def preset_transforms(modality: str | dict, image_key: str = "image", mask_key: str | None = None) -> list[MapTransform]:
    """Dictionary transforms of a preset: loaded slice -> [0, 1] image (mask cropped alike).

    Args:
        modality: a preset name, ``auto`` (:class:`AutoModalityd`) or a preset dict (e.g. a
            modified copy from :func:`get_modality`, such as `{"kind": "ct", "window": (50, 350)}`
            for a custom window in HU).
        image_key: key of the (C, H, W) image.
        mask_key: key of the (1, H, W) mask, cropped with the image by the endoscopy frame removal.
    """
    if modality == AUTO:
        return [AutoModalityd(image_key, mask_key)]
    preset = get_modality(modality) if isinstance(modality, str) else dict(modality)
    kind = preset.get("kind")
    logger.debug("modality preset: %s", preset)
    if kind == "ct":
        return [CTWindowd(image_key, window=preset.get("window", "abdomen"))]
    if kind == "mri":
        return [MRINormalized(image_key, lower=preset.get("lower", 1.0), upper=preset.get("upper", 99.0))]
    if kind in ("oct", "photo"):
        return [ScaleToUnitd(image_key)]
    if kind == "endoscopy":
        steps: list[MapTransform] = [ScaleToUnitd(image_key)]
        if preset.get("remove_black_frame"):
            select = partial(_brighter_than, threshold=float(preset.get("frame_threshold", 0.05)))
            keys = [image_key] + ([mask_key] if mask_key else [])
            steps.append(CropForegroundd(keys, source_key=image_key, select_fn=select, allow_missing_keys=True))
        return steps
    msg = f"unknown preset kind {kind!r} in {preset}; use ct, mri, oct, endoscopy or photo"
    raise ValueError(msg)
