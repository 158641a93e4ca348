"""Writers of small synthetic DICOM series and NIfTI volumes with known geometry, for tests.

The geometry is chosen to catch the classic mistakes: oblique planes (row and column cosines not
along the patient axes), anisotropic spacing, files written in shuffled order with InstanceNumber
not matching the slice order, and NIfTI affines with rotation and flips.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

__all__ = ["oblique_orientation", "write_dicom_series", "write_multiframe_dicom", "write_nifti", "oblique_affine"]


def oblique_orientation(angle_deg: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Row and column direction cosines (LPS) of a plane tilted about two axes.

    Returns:
        (row_dir, col_dir), orthonormal 3-vectors.
    """
    a, b = np.deg2rad(angle_deg), np.deg2rad(angle_deg / 2)
    rot_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rot_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rot = rot_x @ rot_z
    return rot[:, 0], rot[:, 1]


def _slice_dataset(pixels: np.ndarray, position: np.ndarray, orientation, spacing, number: int, uids: dict) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.Modality, ds.PatientID, ds.InstanceNumber = "CT", "SYNTHETIC", number
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in np.concatenate(orientation)]
    ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]  # row spacing, column spacing (mm)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024.0, 1.0
    ds.PixelData = (pixels.astype(np.int32) + 1024).astype(np.int16).tobytes()
    return ds


def write_dicom_series(
    folder: str | PathLike,
    volume: np.ndarray,
    spacing: tuple[float, float, float] = (0.7, 0.9, 2.5),
    origin: tuple[float, float, float] = (-30.0, 12.0, 40.0),
    angle_deg: float = 20.0,
    shuffle_seed: int | None = 0,
    series_uid: str | None = None,
) -> list[dict]:
    """Write a CT series, one file per slice, in shuffled order with scrambled InstanceNumber.

    Args:
        folder: output folder (created).
        volume: (D, H, W) values in HU (integers in [-1024, 31743]).
        spacing: (row spacing, column spacing, slice step) in mm.
        origin: ImagePositionPatient of slice 0 (LPS, mm).
        angle_deg: obliquity of the plane; 0 gives an axial series.
        shuffle_seed: seed of the file-name/InstanceNumber scramble; None keeps slice order.
        series_uid: SeriesInstanceUID (generated when None).

    Returns:
        Per slice in true slice order: {"path", "position" (LPS mm), "row_dir", "col_dir",
        "spacing" (row, col) mm}.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    row_dir, col_dir = oblique_orientation(angle_deg)
    normal = np.cross(row_dir, col_dir)
    uids = {"study": generate_uid(), "series": series_uid or generate_uid(), "frame": generate_uid()}
    order = np.arange(volume.shape[0])
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(order)
    slices = []
    for k in range(volume.shape[0]):
        position = np.asarray(origin, float) + k * spacing[2] * normal
        ds = _slice_dataset(volume[k], position, (row_dir, col_dir), spacing[:2], int(order[k]) + 1, uids)
        path = folder / f"{uids['series'][-6:]}_{order[k]:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        slices.append({"path": path, "position": position, "row_dir": row_dir, "col_dir": col_dir,
                       "spacing": tuple(spacing[:2])})
    return slices


def write_multiframe_dicom(path: str | PathLike, frames: np.ndarray) -> Path:
    """Write a multi-frame DICOM (e.g. an OCT volume): frames (F, H, W) uint8, no geometry tags."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    uids = {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid()}
    ds = _slice_dataset(frames[0], np.zeros(3), (np.eye(3)[0], np.eye(3)[1]), (1.0, 1.0), 1, uids)
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "RescaleIntercept", "RescaleSlope"):
        delattr(ds, tag)
    ds.Modality, ds.NumberOfFrames = "OPT", frames.shape[0]
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
    """Write `data` (X, Y, Z[, T]) as NIfTI with `affine` (default :func:`oblique_affine`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = oblique_affine() if affine is None else affine
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path
