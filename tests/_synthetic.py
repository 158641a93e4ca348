"""Synthetic sources with known geometry for the tests (and benchmarks), built on the package's writers.

The geometry catches the classic mistakes: oblique planes (row and column cosines off the patient
axes), anisotropic spacing, files written in scrambled order with InstanceNumber not following the
slices, and NIfTI affines with rotation and flips. CT series come from the package's one DICOM
series writer (:func:`aaclip_med.demo.writers.write_ct_series`).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, OphthalmicTomographyImageStorage, generate_uid

from aaclip_med.demo.writers import slice_positions, write_ct_series

__all__ = ["oblique_orientation", "oblique_affine", "write_dicom_series", "write_multiframe_dicom", "write_nifti"]


def oblique_orientation(angle_deg: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Row and column direction cosines (LPS) of a plane tilted about two axes; orthonormal."""
    a, b = np.deg2rad(angle_deg), np.deg2rad(angle_deg / 2)
    rot_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rot_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rot = rot_x @ rot_z
    return rot[:, 0], rot[:, 1]


def write_dicom_series(
    folder: str | PathLike,
    volume: np.ndarray,
    spacing: tuple[float, float, float] = (0.7, 0.9, 2.5),
    origin: tuple[float, float, float] = (-30.0, 12.0, 40.0),
    angle_deg: float = 20.0,
    shuffle_seed: int | None = 0,
    series_uid: str | None = None,
) -> list[dict]:
    """Write a CT series, one file per slice, in scrambled order (file names and InstanceNumber).

    Args:
        folder: output folder (created).
        volume: (D, H, W) values in HU (integers in [-1024, 31743]).
        spacing: (row spacing, column spacing, slice step) in mm.
        origin: ImagePositionPatient of slice 0 (LPS, mm).
        angle_deg: obliquity of the plane; 0 gives an axial series.
        shuffle_seed: seed of the scramble; None keeps slice order.
        series_uid: SeriesInstanceUID (new when None).

    Returns:
        Per slice in true slice order: {"path", "position" (LPS mm, as written), "row_dir",
        "col_dir", "spacing" (row, col) mm}.
    """
    row_dir, col_dir = oblique_orientation(angle_deg)
    geometry = {"origin": origin, "row_dir": row_dir, "col_dir": col_dir, "spacing": tuple(spacing[:2]),
                "step": spacing[2]}
    count = volume.shape[0]
    order = np.arange(count) if shuffle_seed is None else np.random.default_rng(shuffle_seed).permutation(count)
    uid = series_uid or generate_uid()
    paths = write_ct_series(Path(folder), volume, geometry, seed=None, instance_order=order, series_uid=uid,
                            name_prefix=f"{uid[-6:]}_")
    return [{"path": path, "position": position, "row_dir": row_dir, "col_dir": col_dir, "spacing": tuple(spacing[:2])}
            for path, position in zip(paths, slice_positions(geometry, count), strict=True)]


def write_multiframe_dicom(path: str | PathLike, frames: np.ndarray) -> Path:
    """Write a multi-frame OCT DICOM: frames (F, H, W) uint8, no geometry tags."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = OphthalmicTomographyImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.InstanceNumber = "OPT", "SYNTHETIC", 1
    ds.NumberOfFrames, (ds.Rows, ds.Columns) = frames.shape[0], frames.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = frames.astype(np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def oblique_affine(spacing: tuple[float, float, float] = (0.8, 1.1, 3.0), angle_deg: float = 25.0) -> np.ndarray:
    """A 4x4 RAS affine with rotation, a flipped axis, anisotropic spacing and an offset (mm)."""
    row_dir, col_dir = oblique_orientation(angle_deg)
    affine = np.eye(4)
    affine[:3, :3] = np.stack([-row_dir, col_dir, np.cross(row_dir, col_dir)], axis=1) @ np.diag(spacing)
    affine[:3, 3] = (12.5, -40.0, 7.25)
    return affine


def write_nifti(path: str | PathLike, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Write ``data`` (X, Y, Z[, T]) as NIfTI with ``affine`` (default :func:`oblique_affine`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = oblique_affine() if affine is None else affine
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path
