"""Find the cases of a run: files, folders (searched recursively) and DICOM series.

A case is one source: a NIfTI file, a plain image, a single DICOM file, or one DICOM series (all
files of a folder sharing a SeriesInstanceUID). Case IDs come from file and folder names only,
never from DICOM tags such as PatientName/PatientID.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from aaclip_med.data.dicom import find_dicom_series
from aaclip_med.data.errors import DataError
from aaclip_med.data.slicing import case_id_from_path

__all__ = ["Case", "discover_cases", "IMAGE_SUFFIXES", "NIFTI_SUFFIXES"]

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_SKIP_SUFFIXES = (".json", ".csv", ".txt", ".md", ".jsonl", ".npy", ".xml", ".html")


class Case(NamedTuple):
    """One source to process.

    Attributes:
        case_id: output name stem (from file/folder names, unique within the run).
        path: the file, or the folder of a DICOM series.
        kind: "nifti", "image", "dicom" (one file) or "dicom_series".
        series_uid: SeriesInstanceUID for a series in a folder holding several, else None.
        files: the series' files in slice order (empty for single files).
    """

    case_id: str
    path: Path
    kind: str
    series_uid: str | None = None
    files: tuple[Path, ...] = ()


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(IMAGE_SUFFIXES):
        return "image"
    if name.startswith(".") or name.endswith(_SKIP_SUFFIXES):
        return None
    return "dicom"


def _series_cases(folder: Path, stem: str) -> list[Case]:
    try:
        series = find_dicom_series(folder)
    except DataError:
        return []  # no DICOM here: other files were not images
    several = len(series) > 1
    return [Case(f"{stem}_{s.uid[-8:]}" if several else stem, folder, "dicom_series", s.uid if several else None, s.files)
            for s in series]


def _stem(path: Path, root: Path) -> str:
    relative = path.relative_to(root) if path != root else Path(path.name)
    parts = list(relative.parts) or [path.name]
    parts[-1] = case_id_from_path(parts[-1]) if path.is_file() else parts[-1]
    return "_".join(parts)


def _from_folder(root: Path) -> list[Case]:
    """Cases under ``root``: image/NIfTI files, and one case per DICOM series per folder."""
    cases: list[Case] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        folder = Path(folder)
        kinds = {name: _kind(folder / name) for name in sorted(names)}
        for name, kind in kinds.items():
            if kind in ("nifti", "image"):
                cases.append(Case(_stem(folder / name, root), folder / name, kind))
        if "dicom" in kinds.values():
            stem = _stem(folder, root) if folder != root else root.name
            cases += _series_cases(folder, stem)
    return cases


def _unique(cases: list[Case]) -> list[Case]:
    seen: dict[str, int] = {}
    out = []
    for case in cases:
        count = seen.get(case.case_id, 0)
        seen[case.case_id] = count + 1
        out.append(case._replace(case_id=f"{case.case_id}-{count + 1}") if count else case)
    return out


def discover_cases(inputs: Iterable[str | os.PathLike]) -> list[Case]:
    """Expand input files and folders into cases (deterministic order, unique IDs).

    Raises:
        FileNotFoundError: an input does not exist.
        DataError: an input folder holds no image, NIfTI or DICOM file.
    """
    cases: list[Case] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"Input {str(path)!r} does not exist.")
        if path.is_file():
            cases.append(Case(case_id_from_path(path), path, _kind(path) or "dicom"))
            continue
        found = _from_folder(path)
        if not found:
            raise DataError(path, "holds no NIfTI, image or DICOM file")
        cases += found
    logger.info("found %d case(s)", len(cases))
    return _unique(cases)
