"""Checks of a received or retrieved series before inference: one series, image objects, whole pixels.

A series that arrives over the network can hold a structured report instead of images, or an
instance whose pixel data was cut short. The file reader would skip an unreadable slice and stack
the others (a volume with a missing slice is a silent wrong result), so a series is refused as a
whole, with a one-line error naming its UID and the offending instance.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from aaclip_med.data.dicom import check_pixel_data, is_image_sop_class
from aaclip_med.data.errors import DataError
from aaclip_med.pacs.errors import NotAnImageSeries, SeriesError
from aaclip_med.presets import dicom_modality_presets, preset_for_dicom_modality

__all__ = ["SeriesInfo", "inspect_series", "is_image_sop_class", "preset_for_modality"]

logger = logging.getLogger(__name__)


class SeriesInfo(NamedTuple):
    """What the pipeline needs to know of a series (UIDs and modality only: no patient attribute)."""

    study_uid: str
    series_uid: str
    modality: str
    sop_class: str
    instances: int


def preset_for_modality(requested: str, info: SeriesInfo) -> str:
    """The inference preset of a series: ``requested`` itself, or for "auto" the one of its Modality
    (the table ``--modality auto`` uses everywhere, :func:`aaclip_med.presets.preset_for_dicom_modality`).

    Raises:
        SeriesError: "auto" and the series' Modality has no preset.
    """
    if requested != "auto":
        return requested
    preset = preset_for_dicom_modality(info.modality)
    if preset is None:
        known = ", ".join(f"{m} -> {p}" for m, p in dicom_modality_presets().items())
        raise SeriesError(f"series {info.series_uid}: Modality {info.modality or '(empty)'} has no preset ({known}); "
                          "pass --modality PRESET")
    return preset


def _check_pixels(path: Path, ds: pydicom.Dataset, series_uid: str) -> None:
    """Refuse an instance without pixel data, or whose uncompressed pixel data is short (the loaders' check)."""
    sop = getattr(ds, "SOPInstanceUID", "?")
    try:
        check_pixel_data(ds, path)
    except DataError as err:
        if err.problem == "has no pixel data":
            raise SeriesError(f"series {series_uid}: instance {sop} has no pixel data") from err
        raise SeriesError(f"series {series_uid}: instance {sop} {err.problem}; re-send the series") from err


def _read(path: Path, series_uid: str) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path, defer_size=1024)
    except (InvalidDicomError, OSError, ValueError, EOFError) as err:
        raise SeriesError(f"series {series_uid}: instance file {path.name} is not readable DICOM ({err})") from err


def inspect_series(folder: str | os.PathLike, series_uid: str | None = None) -> SeriesInfo:
    """Check the instances of one series in ``folder`` (files ``*.dcm``; names starting with "." are skipped).

    Args:
        folder: the series' files.
        series_uid: the expected SeriesInstanceUID (for messages and the check), if known.

    Raises:
        NotAnImageSeries: the instances are not images (SR, SEG, Parametric Map, ...).
        SeriesError: no instance, several series, a missing or short pixel data, an unreadable file.
    """
    files = sorted(p for p in Path(folder).glob("*.dcm") if not p.name.startswith("."))
    label = series_uid or Path(folder).name
    if not files:
        raise SeriesError(f"series {label}: no instance received")
    info = None
    for path in files:
        ds = _read(path, label)
        uid = str(getattr(ds, "SeriesInstanceUID", ""))
        if series_uid and uid != series_uid or info and uid != info.series_uid:
            raise SeriesError(f"series {label}: instance {getattr(ds, 'SOPInstanceUID', path.name)} belongs to series {uid}")
        sop_class = str(getattr(ds, "SOPClassUID", ""))
        if not is_image_sop_class(sop_class):
            raise NotAnImageSeries(f"series {uid}: not an image series ({UID(sop_class).name or 'no SOP class'}, "
                                   f"Modality {getattr(ds, 'Modality', '?')})")
        _check_pixels(path, ds, uid)
        if info is None:
            info = SeriesInfo(str(getattr(ds, "StudyInstanceUID", "")), uid, str(getattr(ds, "Modality", "")), sop_class, 0)
    logger.debug("series %s: %d instance(s) checked", info.series_uid, len(files))
    return info._replace(instances=len(files))
