"""Find the cases of a run: files, folders (searched recursively) and DICOM series.

A case is one source: a NIfTI file, a plain image, a single DICOM file, or one DICOM series (all
files of a folder sharing a SeriesInstanceUID). Case IDs come from file and folder names only,
never from DICOM tags such as PatientName/PatientID. A ``.dcm`` file in a folder that belongs to no
readable series (empty, cut short, not DICOM) becomes a case of its own, so the run reports it as
failed with its problem instead of skipping it silently; other files that are not images
(notes) are skipped, and DICOM objects that are not images (structured reports, segmentations)
are skipped with a warning naming them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from aaclip_med.data.dicom import find_dicom_series, non_image_class, read_dicom_header
from aaclip_med.data.errors import DataError
from aaclip_med.data.loading import SUPPORTED
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


def _series_cases(folder: Path, stem: str, root: Path) -> list[Case]:
    try:
        series = find_dicom_series(folder)
    except DataError:
        series = []  # no readable DICOM here
    several = len(series) > 1
    cases = [Case(f"{stem}_{s.uid[-8:]}" if several else stem, folder, "dicom_series", s.uid if several else None, s.files)
             for s in series]
    in_series = {f for s in series for f in s.files}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() == ".dcm" and path.is_file() and path not in in_series and not _non_image(path):
            cases.append(Case(_stem(path, root), path, "dicom"))  # loading it reports what is wrong
    return cases


def _non_image(path: Path) -> bool:
    """A readable DICOM object that is not an image (find_dicom_series skipped it, with a warning)."""
    try:
        return non_image_class(read_dicom_header(path)) is not None
    except DataError:
        return False


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
            cases += _series_cases(folder, stem, root)
    return cases


def _unique(cases: list[Case]) -> list[Case]:
    seen: dict[str, int] = {}
    out = []
    for case in cases:
        count = seen.get(case.case_id, 0)
        seen[case.case_id] = count + 1
        out.append(case._replace(case_id=f"{case.case_id}-{count + 1}") if count else case)
    return out


def discover_cases(inputs: Sequence[str | os.PathLike | Case]) -> list[Case]:
    """Expand input files and folders into cases (deterministic order, unique IDs).

    Cases found earlier (by a caller that checked the inputs first) pass through unchanged.

    Raises:
        FileNotFoundError: an input does not exist.
        DataError: an input file is of a kind that is never an image (.txt, .json, ...), or an
            input folder holds no image, NIfTI or DICOM file.
    """
    cases: list[Case] = []
    for item in inputs:
        if isinstance(item, Case):
            cases.append(item)
            continue
        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"Input {str(path)!r} does not exist.")
        if path.is_file():
            kind = _kind(path) if not path.name.startswith(".") else "dicom"
            if kind is None:
                raise DataError(path, f"is not an image input; inputs are {SUPPORTED}")
            cases.append(Case(case_id_from_path(path), path, kind))
            continue
        found = _from_folder(path)
        if not found:
            raise DataError(path, "holds no NIfTI, image or DICOM file")
        cases += found
    if not all(isinstance(item, Case) for item in inputs):
        logger.info("found %d case(s)", len(cases))
    return _unique(cases)
