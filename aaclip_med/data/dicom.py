"""DICOM discovery: group the files of a folder into series, each sorted along its slice normal.

Files in a folder are rarely in slice order (PACS exports name them by SOP UID), and one folder may
hold several series (localiser, axial, reformats). Sorting by `InstanceNumber` is not reliable, so
slices are sorted by the projection of `ImagePositionPatient` on the normal of the image plane,
which is the slice position whatever the orientation (oblique included).
"""

from __future__ import annotations

import logging
import os
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from .errors import DataError

__all__ = [
    "DicomSeries", "check_pixel_data", "dicom_modality", "find_dicom_series", "is_image_sop_class", "non_image_class",
    "read_dicom_header", "slice_position",
]

logger = logging.getLogger(__name__)

_PIXEL_DATA = 0x7FE00010
_UNDEFINED_LENGTH = 0xFFFFFFFF


class DicomSeries(NamedTuple):
    """One DICOM series found in a folder.

    Attributes:
        uid: its SeriesInstanceUID.
        files: its files sorted by slice position along the plane normal (mm), feet to head for
            axial series in the usual patient orientation.
    """

    uid: str
    files: tuple[Path, ...]


def read_dicom_header(path: str | PathLike, defer_pixels: bool = False) -> pydicom.Dataset:
    """Read a DICOM header without its pixel data.

    Args:
        path: the file.
        defer_pixels: read up to the end, deferring large values, so that the presence of
            `PixelData` can be tested (the default stops before it, which is faster).

    Raises:
        DataError: the file is empty or not a DICOM file.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise DataError(path, "the file is empty (0 bytes)")
    try:
        if defer_pixels:
            return pydicom.dcmread(path, defer_size=1024)
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError as exc:
        # pydicom's own text suggests force=True, which would read any file as a DICOM
        raise DataError(path, "is not a DICOM file (no 'DICM' marker in its header)") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(path, f"not a readable DICOM file ({exc})") from exc


def is_image_sop_class(sop_class_uid: str) -> bool:
    """True for image storage classes (CT, MR, secondary capture, ...); False for SR, SEG, PM, PR, KO ..."""
    return "Image Storage" in UID(str(sop_class_uid)).name


def non_image_class(header: pydicom.Dataset) -> str | None:
    """The SOP class name of a non-image object (a structured report, a segmentation ...), else None.

    A file without SOPClassUID is taken as an image: its pixel data decides.
    """
    sop_class = str(getattr(header, "SOPClassUID", "") or "")
    if not sop_class or is_image_sop_class(sop_class):
        return None
    return UID(sop_class).name or sop_class


def _expected_pixel_bytes(ds: pydicom.Dataset) -> int:
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    return int(ds.Rows) * int(ds.Columns) * samples * frames * int(ds.BitsAllocated) // 8


def check_pixel_data(dataset: pydicom.Dataset, path: str | PathLike) -> None:
    """Refuse a DICOM object without pixel data, or whose uncompressed pixel data is short.

    Readers do not all refuse a short PixelData (ITK reads past it and returns whatever bytes
    follow), so a slice cut short in transfer would be inferred from garbage. Only the length
    is tested: read `dataset` with ``defer_size`` and the pixels stay on disk.

    Raises:
        DataError: naming `path`, the bytes found and the bytes Rows x Columns x samples x
            frames x BitsAllocated need.
    """
    elem = dataset.get_item(_PIXEL_DATA, keep_deferred=True)
    if elem is None or not all(k in dataset for k in ("Rows", "Columns", "BitsAllocated")):
        raise DataError(path, "has no pixel data")
    raw = isinstance(elem, RawDataElement)
    length = elem.length if raw else len(elem.value or b"")
    if length == _UNDEFINED_LENGTH or getattr(elem, "is_undefined_length", False):  # encapsulated: the decoder checks it
        return
    if raw:  # a file cut short holds less than its header's length says
        length = min(length, os.path.getsize(path) - elem.value_tell)
    expected = _expected_pixel_bytes(dataset)
    if length < expected:
        raise DataError(path, f"is corrupt (pixel data {length} bytes of {expected} expected)")


def dicom_modality(path: str | PathLike, series_uid: str | None = None) -> str | None:
    """The Modality attribute (0008,0060) of a DICOM file, or of the first file of a series folder.

    Args:
        path: a DICOM file or a folder of DICOM files.
        series_uid: in a folder, the series to look at (default: the first readable file).

    Returns:
        The tag value (e.g. "CT", "MR", "OPT"), or None when no readable file carries one.
    """
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for candidate in files:
        try:
            header = read_dicom_header(candidate)
        except DataError:
            continue
        if series_uid is None or str(getattr(header, "SeriesInstanceUID", "")) == series_uid:
            return str(getattr(header, "Modality", "") or "").strip() or None
    return None


def _has_dicom_magic(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def slice_position(header: pydicom.Dataset) -> float:
    """Position (mm) of a slice along the normal of its image plane.

    Falls back to `InstanceNumber` when the geometry tags are missing (secondary captures).
    """
    ipp = getattr(header, "ImagePositionPatient", None)
    iop = getattr(header, "ImageOrientationPatient", None)
    if ipp is None or iop is None:
        return float(getattr(header, "InstanceNumber", 0) or 0)
    row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    return float(np.dot(np.cross(row_dir, col_dir), np.asarray(ipp, float)))


def find_dicom_series(folder: str | PathLike, recursive: bool = False, images_only: bool = True) -> list[DicomSeries]:
    """Group the DICOM files of a folder by SeriesInstanceUID, each series sorted by slice position.

    Args:
        folder: a folder of DICOM files (any file names, any order).
        recursive: also look into sub-folders.
        images_only: skip non-image objects (structured reports, segmentations, presentation
            states: the rule of :func:`non_image_class`) with a warning naming them; False keeps
            them as series of their own (a PACS intake files every series it is given).

    Returns:
        The series, ordered by UID so that the result does not depend on the file system.

    Raises:
        DataError: the folder does not exist or holds no DICOM image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "is not a folder of DICOM files")
    files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if p.is_file())
    groups: dict[str, list[tuple[float, Path]]] = {}
    for path in files:
        try:
            header = read_dicom_header(path)
        except DataError as exc:
            if _has_dicom_magic(path):  # a DICOM file cut short: its series will lack a slice
                logger.warning("skipping unreadable DICOM file %s (%s)", path, exc.problem)
            else:
                logger.debug("skipping non-DICOM file %s (%s)", path, exc.problem)
            continue
        other = non_image_class(header)
        if other and images_only:  # a report or segmentation beside the images: not a case, and not a failure
            logger.warning("skipping %s: not an image (%s)", path, other)
            continue
        uid = str(getattr(header, "SeriesInstanceUID", "") or "unknown")
        groups.setdefault(uid, []).append((slice_position(header), path))
    if not groups:
        raise DataError(folder, "holds no readable DICOM file")
    series = [DicomSeries(uid, tuple(p for _, p in sorted(items))) for uid, items in sorted(groups.items())]
    logger.debug("found %d DICOM series in %s", len(series), folder)
    return series
