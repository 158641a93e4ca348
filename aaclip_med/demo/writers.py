"""Byte-deterministic, atomic writers for the sample: DICOM series, NIfTI, PNG, JSON.

Deterministic means the same arrays give the same bytes: DICOM UIDs are derived from a seed (not
from time or a random source), gzip headers carry no timestamp, and nothing depends on the clock.
Each file is written under a temporary name in its folder and renamed when complete.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from aaclip_med.files import write_bytes_atomic

__all__ = ["write_png", "write_nifti_gz", "write_ct_series", "slice_positions", "series_affine_ras", "ANONYMOUS"]

ANONYMOUS = "ANON"  # PatientName and PatientID of every generated DICOM file
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write a (H, W) or (H, W, 3) uint8 array as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return write_bytes_atomic(path, buffer.getvalue())


def write_nifti_gz(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write a ``.nii.gz`` whose gzip header has no timestamp, so equal inputs give equal bytes."""
    image = nib.Nifti1Image(np.asarray(data), np.asarray(affine, float))
    image.header.set_xyzt_units("mm", "sec")
    return write_bytes_atomic(path, gzip.compress(image.to_bytes(), mtime=0))


def series_affine_ras(
    origin_lps: np.ndarray, row_dir: np.ndarray, col_dir: np.ndarray, spacing: tuple[float, float], step: float
) -> np.ndarray:
    """4x4 RAS affine of a series stored as an array (row, column, slice).

    Args:
        origin_lps: ImagePositionPatient of the first slice (LPS, mm).
        row_dir, col_dir: the two direction cosines of ImageOrientationPatient (LPS).
        spacing: PixelSpacing (between rows, between columns), mm.
        step: distance between consecutive slices along ``row_dir x col_dir``, mm.
    """
    lps = np.eye(4)
    # moving down one row goes along col_dir; moving right one column goes along row_dir
    lps[:3, 0] = np.asarray(col_dir, float) * spacing[0]
    lps[:3, 1] = np.asarray(row_dir, float) * spacing[1]
    lps[:3, 2] = np.cross(row_dir, col_dir) * step
    lps[:3, 3] = origin_lps
    return _LPS_TO_RAS @ lps


# Type 2 attributes of the CT Image IOD (present, may be empty) that the synthetic series has no
# value for: written empty rather than invented (no date, no referring physician, no kVp).
_EMPTY_TYPE2 = ("PatientBirthDate", "StudyDate", "StudyTime", "ReferringPhysicianName", "AccessionNumber",
                "PositionReferenceIndicator", "KVP", "AcquisitionNumber")


def _type2_attributes(ds: Dataset) -> None:
    """Fill what dciodvfy requires of a CT image beyond the pixels and geometry."""
    for keyword in _EMPTY_TYPE2:
        setattr(ds, keyword, "")
    ds.Manufacturer = "aaclip-med (synthetic sample)"
    # the pixels are an axial slice through the spine of pydicom's CT_small.dcm; the spine is an
    # unpaired body part, so General Series Laterality is absent (as the standard asks)
    ds.BodyPartExamined = "SPINE"
    ds.PatientPosition = "HFS"  # type 2C for CT: the usual head-first supine of an axial series


def _ct_slice(pixels: np.ndarray, number: int, position: np.ndarray, geometry: dict, uids: dict) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = uids["instances"][number - 1]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = uids["study"], uids["series"], uids["frame"]
    # neutral identifiers only: nothing of the source file's patient is carried over
    ds.PatientName, ds.PatientID, ds.PatientSex = ANONYMOUS, ANONYMOUS, "O"
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, number
    ds.Modality, ds.StudyDescription = "CT", "aaclip-med sample (synthetic lesion)"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    _type2_attributes(ds)
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in np.concatenate([geometry["row_dir"], geometry["col_dir"]])]
    ds.PixelSpacing = [float(v) for v in geometry["spacing"]]
    ds.SliceThickness = ds.SpacingBetweenSlices = float(geometry["step"])
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024.0, 1.0, "HU"
    ds.WindowCenter, ds.WindowWidth = 40.0, 400.0
    ds.PixelData = (pixels.astype(np.int32) + 1024).astype(np.int16).tobytes()
    return ds


def slice_positions(geometry: dict, count: int) -> np.ndarray:
    """ImagePositionPatient (LPS, mm) of each of ``count`` slices, as written: rounded to 1e-4 mm
    (a DICOM decimal string holds 16 characters)."""
    normal = np.cross(geometry["row_dir"], geometry["col_dir"])
    steps = np.arange(count)[:, None] * float(geometry["step"]) * normal
    return np.round(np.asarray(geometry["origin"], float) + steps, 4)


def _series_uids(seed: int | None, count: int, series_uid: str | None) -> dict:
    if seed is None:  # a new series every call
        uids = {key: generate_uid() for key in ("study", "series", "frame")}
        uids["instances"] = [generate_uid() for _ in range(count)]
    else:  # derived from the seed: a re-run writes identical files
        entropy = ["aaclip-med sample", str(seed)]
        uids = {key: generate_uid(entropy_srcs=[*entropy, key]) for key in ("study", "series", "frame")}
        uids["instances"] = [generate_uid(entropy_srcs=[*entropy, "instance", str(k)]) for k in range(count)]
    if series_uid is not None:
        uids["series"] = series_uid
    return uids


def write_ct_series(
    folder: Path,
    hu: np.ndarray,
    geometry: dict,
    seed: int | None = 0,
    instance_order: np.ndarray | None = None,
    series_uid: str | None = None,
    name_prefix: str = "",
) -> list[Path]:
    """Write (slices, rows, columns) HU values as one CT series, one file per slice.

    The one DICOM series writer of the package: the sample data and the tests' synthetic series
    (oblique planes, scrambled file order) both come from it, so they pass the same conformance.

    Args:
        folder: output folder (created).
        hu: int16 Hounsfield units.
        geometry: ``origin`` (LPS mm of slice 0), ``row_dir``, ``col_dir``, ``spacing`` (row, column
            mm) and ``step`` (mm between slices along the normal).
        seed: UIDs are derived from it, so a re-run writes identical files; None draws new UIDs.
        instance_order: for slice k, its InstanceNumber minus 1 and file number (default k): a
            permutation writes the files in another order than the slices lie in space.
        series_uid: SeriesInstanceUID to use instead of the derived one.
        name_prefix: file names are ``<prefix>IM<number>.dcm`` (several series in one folder).

    Returns:
        The file paths in slice order (slice k is at ``slice_positions(geometry, n)[k]``).
    """
    count = len(hu)
    order = np.arange(count) if instance_order is None else np.asarray(instance_order)
    if sorted(order.tolist()) != list(range(count)):
        raise ValueError(f"instance_order must be a permutation of 0..{count - 1}, got {order.tolist()}")
    uids = _series_uids(seed, count, series_uid)
    paths = []
    for k, (pixels, position) in enumerate(zip(hu, slice_positions(geometry, count), strict=True)):
        number = int(order[k]) + 1
        buffer = io.BytesIO()
        _ct_slice(pixels, number, position, geometry, uids).save_as(buffer, enforce_file_format=True)
        paths.append(write_bytes_atomic(Path(folder) / f"{name_prefix}IM{number:04d}.dcm", buffer.getvalue()))
    return paths
