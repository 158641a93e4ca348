"""Shared by the DICOM writers: lazy highdicom import, source datasets and frame layout.

What is copied from the source: highdicom builds the derived objects from the source images and
copies the modules the standard requires to file them with the source study: Patient (PatientName,
PatientID, PatientBirthDate, PatientSex), General Study (StudyInstanceUID, StudyDate/Time,
AccessionNumber, ReferringPhysicianName, StudyID), Frame of Reference, and references to the
source SOP instances. We add nothing from the source beyond what highdicom takes; output file
names come from the case ID (the input's file/folder name), never from these attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom

from aaclip_med.data.errors import DataError
from aaclip_med.packages import installed_version, require

__all__ = ["import_highdicom", "read_sources", "check_plane_geometry", "frames", "DEVICE", "METHOD", "series_description", "weights_tag"]

DEVICE = {
    "manufacturer": "aaclip-med",
    "manufacturer_model_name": "AA-CLIP zero-shot anomaly detection",
    "device_serial_number": "0",
}


METHOD = "AA-CLIP"  # the method named in series descriptions, segment labels and algorithm identification
_LONG_STRING = 64  # VR LO: SeriesDescription, SegmentLabel, ContentDescription


def weights_tag(weights_sha256: str | None) -> str:
    """Which adapters made a map, for a description: their sha256's first 8 hex digits."""
    return f"weights {weights_sha256[:8]}" if weights_sha256 else "untrained adapters"


def series_description(*parts: str) -> str:
    """``METHOD`` and ``parts`` joined into one Series Description (cut to the 64 characters of VR LO)."""
    return ", ".join((METHOD, *parts))[:_LONG_STRING]


def import_highdicom():
    """highdicom, or an ImportError that says how to install it."""
    return require("highdicom", "writing DICOM outputs")


def software_version() -> str:
    return installed_version("aaclip-med") or "unknown"


# Type 2 attributes (present, may be empty) that highdicom copies; exports and anonymisers often
# drop them, so missing ones are added *empty* to the in-memory copy (never with invented values).
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")


def read_sources(files: Sequence[Path]) -> list[pydicom.Dataset]:
    """The source datasets in slice order (the order the volume was stacked in)."""
    sources = [pydicom.dcmread(str(f)) for f in files]
    for ds in sources:
        for keyword in _TYPE2:
            if keyword not in ds:
                setattr(ds, keyword, "")
    _fill_slice_thickness(sources)
    return sources


_PLANE = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")


def check_plane_geometry(sources: Sequence[pydicom.Dataset], files: Sequence[Path], what: str,
                         required: bool) -> None:
    """Refuse sources whose image plane a DICOM ``what`` cannot be placed on, naming the file.

    A Parametric Map needs the plane of every source (``required``); a SEG takes a source with no
    plane at all (a secondary capture), but not one with part of it. highdicom would otherwise fail
    later with a message about functional groups or a missing attribute.

    Raises:
        DataError: naming the first such file and the attributes it lacks.
    """
    for ds, path in zip(sources, files, strict=True):
        if "SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds:
            continue  # a multi-frame object keeps its plane in functional groups (highdicom reads them there)
        missing = [keyword for keyword in _PLANE if ds.get(keyword) in (None, "")]
        if missing and (required or len(missing) < len(_PLANE)):
            kind = "part of its image plane" if len(missing) < len(_PLANE) else "no image plane (a secondary capture?)"
            raise DataError(path, f"has {kind}: {', '.join(missing)} missing, which a DICOM {what} needs to be "
                                  "placed on it; write the NIfTI outputs only (no DICOM outputs) for this source")


def _fill_slice_thickness(sources: Sequence[pydicom.Dataset]) -> None:
    """highdicom reads SliceThickness (type 2 in CT/MR) to build the pixel measures; where an export
    dropped it, the in-memory copy gets the distance between slice positions (1 mm for one slice)."""
    if all(getattr(ds, "SliceThickness", None) not in (None, "") for ds in sources):
        return
    thickness = 1.0
    if len(sources) > 1 and "ImagePositionPatient" in sources[0] and "ImagePositionPatient" in sources[1]:
        step = np.subtract(sources[1].ImagePositionPatient, sources[0].ImagePositionPatient)
        thickness = float(np.linalg.norm(step)) or 1.0
    for ds in sources:
        if getattr(ds, "SliceThickness", None) in (None, ""):
            ds.SliceThickness = thickness


def frames(volume: np.ndarray, count: int) -> np.ndarray:
    """(rows, columns[, slices]) map -> (frames, rows, columns) in source order.

    Raises:
        ValueError: the slice count differs from the number of source files.
    """
    stack = volume[None] if volume.ndim == 2 else np.moveaxis(volume, -1, 0)
    if stack.shape[0] != count:
        raise ValueError(f"map has {stack.shape[0]} slices but the series has {count} source files")
    return np.ascontiguousarray(stack)
