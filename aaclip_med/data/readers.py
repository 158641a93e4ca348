"""A MONAI `ImageReader` for DICOM series and multi-frame DICOM, built on SimpleITK.

MONAI's `PydicomReader` stacks a folder by `InstanceNumber` and takes every file of the folder as
one series; ITK's GDCM reader (here through SimpleITK, already a dependency) reads exactly the
files it is given, in the order given, with the full oblique geometry. Files come sorted from
:func:`aaclip_med.data.dicom.find_dicom_series`.

Array layout matches `PydicomReader(swap_ij=False)`: (rows, columns, slices) = (H, W, D), so a
slice reads like the image a viewer shows. The affine is in RAS, as everywhere in MONAI.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from monai.data import ImageReader
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from .dicom import check_pixel_data, find_dicom_series, read_dicom_header
from .errors import DataError

__all__ = ["DicomSeriesReader", "sitk_affine_ras", "check_series_geometry", "itk_reason"]

# ITK index order is (column, row, slice); our array order is (row, column, slice).
_AXES = [1, 0, 2]
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# tolerances of the series geometry check: direction cosines, and slice-step deviation in mm
# (absolute floor, or this fraction of the median step, whichever is larger)
_ORIENTATION_TOL = 1e-3
_STEP_TOL_MM, _STEP_TOL_FRACTION = 0.01, 0.01


def check_series_geometry(files: Sequence[Path], where: PathLike) -> None:
    """Refuse a series whose slices differ in orientation or are not evenly spaced.

    ITK stacks such a series anyway (it only logs "non uniform sampling") with one averaged
    spacing, which puts every map voxel in the wrong place; a missing slice (a file lost in
    the export) shows up here as a gap. Series without geometry tags (secondary captures) pass.

    Raises:
        DataError: naming the folder, the offending files and the values found.
    """
    headers = [(Path(f), read_dicom_header(f)) for f in files]
    _check_slice_sizes(headers, where)
    geometry = [(f, h.get("ImageOrientationPatient"), h.get("ImagePositionPatient")) for f, h in headers]
    if len(geometry) < 2 or any(iop is None or ipp is None for _, iop, ipp in geometry):
        return
    first_file, first_iop = geometry[0][0], np.asarray(geometry[0][1], float)
    for path, iop, _ in geometry[1:]:
        if not np.allclose(np.asarray(iop, float), first_iop, atol=_ORIENTATION_TOL):
            msg = (f"slices differ in orientation: {path.name} has ImageOrientationPatient {list(map(float, iop))}, "
                   f"{first_file.name} has {first_iop.tolist()}; split the series or pass series_uid")
            raise DataError(where, msg)
    normal = np.cross(first_iop[:3], first_iop[3:])
    positions = np.array([float(np.dot(normal, np.asarray(ipp, float))) for _, _, ipp in geometry])
    steps = np.diff(positions)
    median = float(np.median(steps))
    tolerance = max(_STEP_TOL_MM, _STEP_TOL_FRACTION * abs(median))
    bad = np.flatnonzero(np.abs(steps - median) > tolerance)
    if abs(median) <= _STEP_TOL_MM or len(bad):
        k = int(bad[0]) if len(bad) else 0
        msg = (f"slices are not evenly spaced: {geometry[k][0].name} -> {geometry[k + 1][0].name} is "
               f"{steps[k]:.3f} mm, the series' usual step is {median:.3f} mm (a missing, duplicate or "
               f"foreign slice?); the map geometry would be wrong")
        raise DataError(where, msg)


def _check_slice_sizes(headers: Sequence[tuple[Path, object]], where: PathLike) -> None:
    """Refuse a series whose slices differ in Rows x Columns (ITK's own error names neither)."""
    first_file, first = headers[0][0], headers[0][1]
    size = (first.get("Rows"), first.get("Columns"))
    for path, header in headers[1:]:
        other = (header.get("Rows"), header.get("Columns"))
        if other != size:
            msg = (f"slices differ in size: {path.name} is {other[0]} x {other[1]}, {first_file.name} is "
                   f"{size[0]} x {size[1]} (rows x columns); a slice of another series?")
            raise DataError(where, msg)


def itk_reason(exc: Exception, limit: int = 300) -> str:
    """The reason of an ITK/SimpleITK error, without the "Exception thrown in ...: file.cxx:468:"
    prefix and object addresses that fill its first line (and used to be all a user saw)."""
    text = re.sub(r"^Exception thrown in SimpleITK \w+: \S+:\d+:\s*", "", str(exc).strip())
    text = re.sub(r"ITK ERROR: \w+\(0x[0-9a-f]+\):\s*|\s*\(0x[0-9a-f]+\)", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sitk_affine_ras(image: sitk.Image) -> np.ndarray:
    """4x4 RAS affine of a 3D SimpleITK image for arrays laid out as (row, column, slice).

    Args:
        image: a 3D SimpleITK image (physical space LPS, mm).
    """
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = (direction @ np.diag(image.GetSpacing()))[:, _AXES]
    lps[:3, 3] = image.GetOrigin()
    return _LPS_TO_RAS @ lps


def _first_unreadable(files: Sequence[Path]) -> Path | None:
    """The first file ITK cannot read on its own (to name it when a whole series fails)."""
    for path in files:
        try:
            sitk.ReadImage(str(path))
        except RuntimeError:
            return Path(path)
    return None


class DicomSeriesReader(ImageReader):
    """Read one DICOM series (a folder or a sorted file list) or one multi-frame DICOM file.

    Args:
        series_uid: SeriesInstanceUID to read from a folder holding several series; None takes
            the series with the most files.
    """

    def __init__(self, series_uid: str | None = None) -> None:
        super().__init__()
        self.series_uid = series_uid

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        return all(Path(f).is_dir() or Path(f).suffix.lower() in ("", ".dcm") for f in ensure_tuple(filename))

    def _series_files(self, folder: Path) -> tuple[Path, ...]:
        series = find_dicom_series(folder)
        if self.series_uid is None:
            return max(series, key=lambda s: len(s.files)).files
        for item in series:
            if item.uid == self.series_uid:
                return item.files
        msg = f"has no series {self.series_uid!r}; series found: {[s.uid for s in series]}"
        raise DataError(folder, msg)

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs) -> tuple[sitk.Image, str]:
        paths = [Path(p) for p in ensure_tuple(data)]
        files = self._series_files(paths[0]) if len(paths) == 1 and paths[0].is_dir() else tuple(paths)
        if len(files) > 1:
            check_series_geometry(files, paths[0])
        for path in files:  # ITK reads a short PixelData without complaint: garbage pixels
            check_pixel_data(read_dicom_header(path, defer_pixels=True), path)
        reader = sitk.ImageSeriesReader() if len(files) > 1 else sitk.ImageFileReader()
        if len(files) > 1:
            reader.SetFileNames([str(f) for f in files])
        else:
            reader.SetFileName(str(files[0]))
        try:
            image = reader.Execute()
        except RuntimeError as exc:
            where = _first_unreadable(files) or paths[0]
            raise DataError(where, f"cannot be read as a DICOM series ({itk_reason(exc)})") from exc
        return image, str(paths[0])

    def get_data(self, img: tuple[sitk.Image, str]) -> tuple[np.ndarray, dict]:
        image, _ = img
        if image.GetDimension() == 2:  # a single frame: make it a one-slice volume
            image = sitk.JoinSeries(image)
        array = sitk.GetArrayFromImage(image)  # (D, H, W) [(C) for RGB]
        # colour keeps its channels last (MONAI moves them first): (H, W, D) or (H, W, D, C)
        spatial = np.moveaxis(array, 0, 2) if array.ndim == 4 else np.moveaxis(array, 0, -1)
        affine = sitk_affine_ras(image)
        meta = {
            MetaKeys.AFFINE: affine,
            MetaKeys.ORIGINAL_AFFINE: affine.copy(),
            MetaKeys.SPATIAL_SHAPE: np.asarray(spatial.shape[:3]),
            MetaKeys.SPACE: SpaceKeys.RAS,
            MetaKeys.ORIGINAL_CHANNEL_DIM: -1 if array.ndim == 4 else float("nan"),
            "spacing": np.asarray(image.GetSpacing())[_AXES],
        }
        return np.ascontiguousarray(spatial), meta
