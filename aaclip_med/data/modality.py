"""Modality presets as data: which intensity steps turn a loaded slice into a [0, 1] image.

A preset is a plain dict: `kind` (ct | mri | oct | endoscopy | photo), its parameters, and the
`domain` (medical | industrial) that picks the smoothing kernel and image-score rule downstream.
"""

from __future__ import annotations

import copy
import logging
from functools import partial
from types import MappingProxyType

import torch
from monai.transforms import CropForegroundd, MapTransform

from aaclip_med.keys import Domain

from .intensity import CT_WINDOWS, CTWindowd, MRINormalized, ScaleToUnitd

__all__ = ["list_modalities", "get_modality", "preset_transforms", "resolve_modality_name"]

logger = logging.getLogger(__name__)

_PRESETS = MappingProxyType(
    {
        **{f"ct-{name.replace('_', '-')}": {"kind": "ct", "window": name, "domain": Domain.MEDICAL} for name in CT_WINDOWS},
        "ct": {"kind": "ct", "window": "abdomen", "domain": Domain.MEDICAL},
        "mri": {"kind": "mri", "lower": 1.0, "upper": 99.0, "domain": Domain.MEDICAL},
        "oct": {"kind": "oct", "domain": Domain.MEDICAL},
        "endoscopy": {"kind": "endoscopy", "remove_black_frame": False, "frame_threshold": 0.05, "domain": Domain.MEDICAL},
        "photo": {"kind": "photo", "domain": Domain.INDUSTRIAL},
    }
)


# Short names users type (DICOM's Modality attribute says "MR") -> preset names.
_ALIASES = MappingProxyType({"mr": "mri"})


def resolve_modality_name(name: str) -> str:
    """The preset name of ``name`` (aliases such as "mr" resolved); unknown names raise ValueError."""
    resolved = _ALIASES.get(name, name)
    if resolved not in _PRESETS:
        msg = f"unknown modality {name!r}; choose one of {list_modalities()} (or 'mr' for 'mri')"
        raise ValueError(msg)
    return resolved


def list_modalities() -> list[str]:
    """Names of the built-in modality presets."""
    return sorted(_PRESETS)


def get_modality(name: str) -> dict:
    """A copy of the preset `name` (safe to modify).

    Raises:
        ValueError: unknown name; the message lists the choices.
    """
    return copy.deepcopy(dict(_PRESETS[resolve_modality_name(name)]))


def _brighter_than(img: torch.Tensor, threshold: float) -> torch.Tensor:
    # endoscope frames are near-black in every channel
    return img.mean(dim=0, keepdim=True) > threshold


def preset_transforms(modality: str | dict, image_key: str = "image", mask_key: str | None = None) -> list[MapTransform]:
    """Dictionary transforms of a preset: loaded slice -> [0, 1] image (mask cropped alike).

    Args:
        modality: a preset name or a preset dict (e.g. a modified copy from :func:`get_modality`,
            such as `{"kind": "ct", "window": (50, 350)}` for a custom window in HU).
        image_key: key of the (C, H, W) image.
        mask_key: key of the (1, H, W) mask, cropped with the image by the endoscopy frame removal.
    """
    preset = get_modality(modality) if isinstance(modality, str) else dict(modality)
    kind = preset.get("kind")
    logger.info("modality preset: %s", preset)
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
