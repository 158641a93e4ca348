"""NIfTI overlays on the source grid: float32 anomaly map and optional uint8 mask.

The array is written in the layout of the loaded source (MONAI's channel-first MetaTensor without
its channel) with the source's RAS affine as both sform and qform (code 1, scanner), so viewers
(3D Slicer, ITK-SNAP, NiiVue) place it exactly on the original. A 2D source becomes a one-slice
volume (H, W, 1) whose affine keeps the pixel spacing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from aaclip_med.files import atomic_path

__all__ = ["affine_4x4", "write_nifti_overlay", "write_nifti_mask"]

logger = logging.getLogger(__name__)


def affine_4x4(affine: torch.Tensor | np.ndarray) -> np.ndarray:
    """A 4x4 affine from MONAI's 4x4 (3D) or 3x3 (2D) one; a 2D affine gets a unit third axis."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape == (4, 4):
        return affine
    if affine.shape == (3, 3):
        out = np.eye(4)
        out[:2, :2], out[:2, 3] = affine[:2, :2], affine[:2, 2]
        return out
    raise ValueError(f"expected a 3x3 or 4x4 affine, got shape {affine.shape}")


def _spatial(score_map: torch.Tensor) -> np.ndarray:
    array = np.asarray(score_map.detach().cpu() if isinstance(score_map, torch.Tensor) else score_map)
    array = array[0] if array.ndim in (3, 4) and array.shape[0] == 1 else array  # drop the channel
    return array[..., None] if array.ndim == 2 else array  # 2D -> (H, W, 1)


def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    image = nib.Nifti1Image(array, affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))
    logger.debug("wrote %s %s", path, array.shape)
    return path


def write_nifti_overlay(score_map: torch.Tensor, affine: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write a float32 anomaly map.

    Args:
        score_map: (1, X, Y, Z), (1, H, W) or without the channel axis.
        affine: the source's 4x4 (or 3x3 for 2D) voxel -> RAS mm affine.
        path: target ``.nii.gz`` file.
    """
    return _save(_spatial(score_map).astype(np.float32), affine_4x4(affine), Path(path))


def write_nifti_mask(
    score_map: torch.Tensor, affine: torch.Tensor | np.ndarray, threshold: float, path: str | os.PathLike
) -> Path:
    """Write the uint8 label map ``score_map >= threshold`` (1 anomalous, 0 elsewhere)."""
    mask = (_spatial(score_map) >= threshold).astype(np.uint8)
    return _save(mask, affine_4x4(affine), Path(path))
