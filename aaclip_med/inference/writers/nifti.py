"""NIfTI overlays on the source grid: float32 anomaly map and optional uint8 mask.

The array is written in the layout of the loaded source (MONAI's channel-first MetaTensor without
its channel), so viewers (3D Slicer, ITK-SNAP, NiiVue) place it exactly on the original. The
spatial header follows the source:

- NIfTI source: its sform and qform (matrices *and* codes, e.g. sform_code 2 "aligned" with
  qform_code 0 stays 2 / 0), its pixdim and its spatial/temporal units (``xyzt_units``) are copied.
  A qform that differs from the sform (scanner vs. template space) is kept as it was. The one
  exception: a header whose pixdim disagrees with its sform/qform is rewritten by MONAI's reader, and
  the overlay then carries the affine the map was computed on (logged as a warning).
- DICOM source: the patient coordinate system of the series is the scanner's, so sform and qform
  are the series' affine with code 1 (scanner) and the units are mm.

A 2D source becomes a one-slice volume (H, W, 1) whose affine keeps the pixel spacing.

nibabel writes the file rather than MONAI's ``SaveImage``: its ``NibabelWriter`` always sets sform
and qform to the same affine with code 1 and leaves ``xyzt_units`` unset, which would turn an
aligned (code 2) or template (code 4) source into a scanner-space overlay.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from aaclip_med.files import atomic_path

__all__ = ["affine_4x4", "overlay_header", "write_nifti_overlay", "write_nifti_mask", "write_nifti_volume"]

logger = logging.getLogger(__name__)

# Header fields of a NIfTI source that fix where voxels are and in which units.
SPATIAL_FIELDS = ("pixdim", "xyzt_units", "qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d",
                  "qoffset_x", "qoffset_y", "qoffset_z", "srow_x", "srow_y", "srow_z")
_SCANNER = 1  # NIfTI xform code "scanner anatomical"
_AFFINE_ATOL = 1e-3  # mm; the header stores float32


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


def _scanner_header(header: nib.Nifti1Header, affine: np.ndarray) -> nib.Nifti1Header:
    header.set_sform(affine, code=_SCANNER)
    header.set_qform(affine, code=_SCANNER)
    return header


def overlay_header(shape: tuple[int, ...], affine: np.ndarray, source: str | os.PathLike | None = None) -> nib.Nifti1Header:
    """The spatial header of an overlay whose voxels are those of the source.

    Args:
        shape: the overlay's array shape (a header without sform/qform places voxels by it).
        affine: the source's 4x4 voxel -> RAS mm affine, as MONAI loaded it.
        source: the NIfTI source file, whose header (read from the file: the loaded image's meta is
            updated by later transforms) gives the codes, matrices and units; None for DICOM
            sources (scanner space, mm).
    """
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    reference = nib.load(str(source)).header if source is not None else None
    if not isinstance(reference, nib.Nifti1Header):  # DICOM, or an Analyze file (no sform/qform)
        header.set_xyzt_units("mm")
        return _scanner_header(header, affine)
    for key in SPATIAL_FIELDS:
        header[key] = reference[key]
    if np.allclose(header.get_best_affine(), affine, atol=_AFFINE_ATOL):
        return header
    # MONAI's reader rewrites a header whose pixdim disagrees with its sform/qform; the map is on the
    # grid MONAI used, so that affine is written, under the source's codes where they can carry it.
    logger.warning("%s: sform/qform disagree with pixdim; the overlay carries the affine the map was computed on",
                   source)
    header.set_sform(affine, code=int(reference["sform_code"]))
    header.set_qform(affine, code=int(reference["qform_code"]))
    if not np.allclose(header.get_best_affine(), affine, atol=_AFFINE_ATOL):
        _scanner_header(header, affine)
    return header


def _save(array: np.ndarray, affine: np.ndarray, path: Path, source: str | os.PathLike | None) -> Path:
    header = overlay_header(array.shape, affine, source)
    image = nib.Nifti1Image(array, None, header=header)  # affine None: keep the header's sform and qform
    with atomic_path(path) as tmp:
        nib.save(image, str(tmp))
    logger.debug("wrote %s %s (sform %d, qform %d)", path, array.shape, header["sform_code"], header["qform_code"])
    return path


def write_nifti_volume(
    array: np.ndarray, affine: torch.Tensor | np.ndarray, path: str | os.PathLike, source: str | os.PathLike | None = None
) -> Path:
    """Write an (X, Y, Z) array of the source's grid as is (its dtype), with the source's spatial header."""
    return _save(np.asarray(array), affine_4x4(affine), Path(path), source)


def write_nifti_overlay(
    score_map: torch.Tensor, affine: torch.Tensor | np.ndarray, path: str | os.PathLike,
    source: str | os.PathLike | None = None,
) -> Path:
    """Write a float32 anomaly map.

    Args:
        score_map: (1, X, Y, Z), (1, H, W) or without the channel axis.
        affine: the source's 4x4 (or 3x3 for 2D) voxel -> RAS mm affine.
        path: target ``.nii.gz`` file.
        source: the NIfTI source file whose header the overlay follows (see :func:`overlay_header`).
    """
    return _save(_spatial(score_map).astype(np.float32), affine_4x4(affine), Path(path), source)


def write_nifti_mask(
    score_map: torch.Tensor, affine: torch.Tensor | np.ndarray, threshold: float, path: str | os.PathLike,
    source: str | os.PathLike | None = None,
) -> Path:
    """Write the uint8 label map ``score_map >= threshold`` (1 anomalous, 0 elsewhere)."""
    mask = (_spatial(score_map) >= threshold).astype(np.uint8)
    return _save(mask, affine_4x4(affine), Path(path), source)
